"""The steps backup task bodies share: one backup through its stages, and one backup back.

Honest outcomes: every backup goes through the stages snapshot -> upload -> verify, each
recorded with its outcome and size on the backup row and in the task's `result`. A backup row
turns `normal` only after the verify stage read the stored backup back against its checksum
list; any exception (storage error, full disk, stop) leaves it `error` with the stage that
failed, the task fails with "<stage> failed: <storage's message>", and a notification is raised.
A SIGKILL leaves the row `creating`; records.mark_stale turns it into `error` once the task is
seen to be over.

Whether a backup is encrypted is what its row says (`Backup.encrypted`, set when it was made),
never what the storage says: every read passes it as `expect_encrypted`, so a backup swapped
for an unencrypted one in the storage is refused (security review, finding 3).
"""
import json
import logging
import os
import shutil
import time
from collections.abc import Callable

import apps
import backup_storage
import eventlog
from addons import registry as addon_registry
from backups import database_snapshots, formats, records, scratch, settings, snapshot_secrets
from core import config, data_paths
from core.errors import ApiError
from eventlog import notifications
from mail import account_mail
from models.apps import App
from models.backups import Backup
from tasks.context import TaskContext, TaskStopped

log = logging.getLogger("berth.backups")
STAGES = ("snapshot", "upload", "verify")


class StageFailed(ApiError):
    """A backup stage failed; the message names the stage and carries the underlying reason."""
    status = 424

    def __init__(self, stage: str, what: str, reason: str, stages: dict | None = None) -> None:
        super().__init__(f"{stage} of {what} failed: {reason}")
        self.stage = stage
        self.code = f"{stage}Failed"
        self.result = {"stages": stages} if stages else None  # recorded as the task's result


def reason(exc: BaseException) -> str:
    return getattr(exc, "message", None) or str(exc) or type(exc).__name__


def check_storage(cfg: dict) -> None:
    """Refuse a noop storage (nothing would be kept) and end stale `creating` backups first."""
    if cfg.get("provider") == "noop":
        raise StageFailed("upload", "the backup", "backups are disabled (the backup storage is noop)")
    records.mark_stale()


def notify_failure(title: str, exc: BaseException, task: TaskContext) -> None:
    message = f"{reason(exc)}\n\nTask {task.id}; see its log for details."
    try:
        notifications.add(title, message)
        eventlog.record("backup.finish", eventlog.SYSTEM, taskId=str(task.id), errorMessage=reason(exc))
    except Exception:  # noqa: BLE001 - the failure itself is what must be reported
        log.exception("could not record the backup failure")
    try:  # and by mail to the admins, when outgoing mail works (best effort: the notification stands)
        account_mail.notify_admins(title, message)
    except Exception:  # noqa: BLE001
        log.exception("could not mail the backup failure")


# ---- making a backup ----------------------------------------------------------------------------

def _previous_remote(cfg, type, app_id):
    """For rsync: the newest good backup of the same source, whose unchanged files are copied
    (or hard-linked) instead of uploaded again."""
    if cfg.get("format") != "rsync":
        return None
    query = Backup.select().where((Backup.type == type) & (Backup.state == "normal")
                                  & (Backup.format == "rsync") & (Backup.encrypted == bool(cfg.get("key"))))
    if app_id:
        query = query.where(Backup.app_id == app_id)
    row = query.order_by(Backup.creation_time.desc()).first()
    return row.remote_path if row is not None else None


def backup_one(task: TaskContext, storage: backup_storage.Storage, cfg: dict, row_fields: dict,
               prepare: Callable[[Backup], tuple[str, dict]], what: str) -> dict:
    """Create one backup: the row (`creating`), then the stages. `prepare(backup)` returns the
    folder to pack and the snapshot stage's figures. Returns {id, type, appId, stages, size}."""
    key = cfg.get("key") or None
    backup = Backup.create(state="creating", format=cfg["format"], encrypted=bool(key), task_id=task.id,
                           **row_fields)
    stages = {}
    stage = "snapshot"
    try:
        src, figures = prepare(backup)
        stages["snapshot"] = {"outcome": "ok", **figures}
        Backup.update(stages=stages).where(Backup.id == backup.id).execute()

        stage = "upload"
        started = time.monotonic()
        packed = formats.pack(cfg["format"], src, storage, backup.remote_path, key=key,
                              previous=_previous_remote(cfg, backup.type, backup.app_id),
                              log=task.log, concurrency=int(cfg.get("syncConcurrency") or 4))
        stages["upload"] = {"outcome": "ok", "size": packed.get("size", 0),
                            "uploadedBytes": packed.get("uploadedBytes", packed.get("size", 0)),
                            "files": packed.get("files"), "seconds": round(time.monotonic() - started, 3)}
        Backup.update(stages=stages, size=packed.get("size", 0), checksum_path=packed.get("checksums")).where(
            Backup.id == backup.id).execute()

        stage = "verify"
        started = time.monotonic()
        checked = formats.verify(cfg["format"], storage, backup.remote_path, key=key,
                                 expect_encrypted=backup.encrypted, reused=packed.pop("reused", ())) or {}
        stages["verify"] = {"outcome": "ok", "size": packed.get("size", 0),
                            "seconds": round(time.monotonic() - started, 3),
                            **{k: v for k, v in checked.items() if isinstance(v, (int, float, str, bool))}}
        backup = Backup.get_by_id(backup.id)
        storage.put_bytes(records.meta_path(backup.remote_path), json.dumps(records.meta(backup)).encode())
        # Only now, with everything written and read back, is the backup good.
        Backup.update(state="normal", stages=stages, error=None).where(Backup.id == backup.id).execute()
    except BaseException as e:  # noqa: B902 - a stop must leave `error` too, then go on stopping
        stopped = isinstance(e, TaskStopped)
        why = "the task was stopped" if stopped else reason(e)
        stages[stage] = {"outcome": "stopped" if stopped else "failed", "error": why}
        for later in STAGES[STAGES.index(stage) + 1:]:
            stages.setdefault(later, {"outcome": "skipped"})
        Backup.update(state="error", stages=stages, error={"message": why, "stage": stage}).where(
            Backup.id == backup.id).execute()
        task.log(f"{what}: {stage} {'stopped' if stopped else 'failed'}: {why}")
        if stopped:
            raise
        raise StageFailed(stage, what, why, stages) from e
    task.log(f"{what}: backed up as {backup.id} ({stages['upload']['size']} bytes stored)")
    return {"id": backup.id, "type": backup.type, "appId": backup.app_id, "size": stages["upload"]["size"],
            "stages": stages}


# An app whose addons keep data outside its data folder (databases) is backed up as Cloudron does:
# the data folder as `data/` beside one dump per addon (postgresqldump, mysqldump, dump.rdb), and
# its app_config says so (DATA_FOLDER). Other apps' backups are their data folder itself, as before.
DATA_FOLDER = "data"


def app_backup(task: TaskContext, storage: backup_storage.Storage, cfg: dict, app: App, tag: str) -> dict:
    dumps = addon_registry.dumps(app.manifest)
    work = scratch.work_dir(task, f"app-{app.id}") if dumps else None

    def prepare(backup):
        src = apps.data_dir(app.id)
        if not os.path.isdir(src):
            os.makedirs(src, exist_ok=True)
        figures = {}
        if work is not None:
            # The dumps go into a folder of Berth's, never into the data folder the app can write.
            os.makedirs(work, mode=0o700)
            scratch.link_tree(src, os.path.join(work, DATA_FOLDER))
            figures["addons"] = addon_registry.backup_app(app, work, task.log)
            src = work
        size, files = scratch.tree_size(src)
        return src, {"size": size, "files": files, **figures}
    config = records.app_config(app)
    if dumps:
        config.update(dataFolder=DATA_FOLDER, addonDumps=dumps)
    fields = {"id": records.app_backup_id(tag, app), "type": "app", "app_id": app.id,
              "version": (app.manifest or {}).get("version", ""), "manifest": app.manifest,
              "app_config": config}
    fields["remote_path"] = fields["id"]
    try:
        return backup_one(task, storage, cfg, fields, prepare, f"app {apps.fqdn(app)}")
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)


def box_backup(task: TaskContext, storage: backup_storage.Storage, cfg: dict, tag: str, depends_on: list,
               work: str) -> dict:
    """The platform: a scrubbed snapshot of the database (snapshot_secrets says what is left
    out) and the avatars."""
    def prepare(backup):
        # The box row (with its dependsOn) exists before the snapshot, so a restored database
        # knows which app backups belong to it.
        src = os.path.join(work, "box")
        info = database_snapshots.snapshot(src, scrub=snapshot_secrets.scrubbers(encrypted=backup.encrypted))
        if os.path.isdir(data_paths.avatars()):
            shutil.copytree(data_paths.avatars(), os.path.join(src, "avatars"))
        size, files = scratch.tree_size(src)
        return src, {"size": size, "files": files, "database": info["dbType"],
                     "databaseSize": info["size"]}
    box = records.box_id(tag)
    fields = {"id": box, "remote_path": box, "type": "box", "version": config.get().version,
              "depends_on": depends_on}
    return backup_one(task, storage, cfg, fields, prepare, "the platform")


def totals(entries: list, prune: dict | None = None) -> dict:
    stages = {}
    for name in STAGES:
        outcomes = [e["stages"].get(name, {}) for e in entries]
        ok = bool(outcomes) and all(o.get("outcome") == "ok" for o in outcomes)
        stages[name] = {"outcome": "ok" if ok else "failed",
                        "size": sum(o.get("size", 0) or 0 for o in outcomes)}
    if prune is not None:
        stages["prune"] = prune
    return stages


# ---- reading a backup back ----------------------------------------------------------------------

def unpack(task: TaskContext, backup: Backup, dest: str) -> dict:
    """Download `backup` into `dest` with the configured key, expecting exactly the encryption
    its row records (finding 3)."""
    cfg = settings.get_config()
    shutil.rmtree(dest, ignore_errors=True)
    key = cfg.get("key") or None
    if backup.encrypted and not key:
        raise StageFailed("download", f"backup {backup.id}",
                          "the backup is encrypted but the backup configuration has no key")
    return formats.unpack(backup.format, settings.open_storage(cfg), backup.remote_path, dest,
                          key=key if backup.encrypted else None, log=task.log,
                          expect_encrypted=bool(backup.encrypted))


def download(task: TaskContext, backup_id: str, staged: str) -> Backup:
    backup = records.get_backup(backup_id)
    task.progress(10, f"Downloading backup {backup.id}")
    unpack(task, backup, staged)
    return backup


def data_folder(backup: Backup, staged: str) -> str:
    """Where the app's data folder is in the downloaded backup `staged`: the backup itself, or its
    `data/` when it also holds addon dumps (app_backup)."""
    if (backup.app_config or {}).get("dataFolder") == DATA_FOLDER:
        return os.path.join(staged, DATA_FOLDER)
    return staged


def restore_addons(task: TaskContext, app: App, backup: Backup, staged: str,
                   previous_manifest: dict | None = None) -> None:
    """Fresh databases for the app, loaded from the dumps of the downloaded backup `staged`, before
    its container starts. `previous_manifest`: the app's manifest before a restore, whose addons
    the backed-up version does not declare are removed. A clone (a new app id) gets databases and
    credentials of its own."""
    if previous_manifest is not None:
        addon_registry.teardown_app(app, task.log, manifest=previous_manifest, keep=app.manifest)
    names = (backup.app_config or {}).get("addonDumps") or []
    if names and (backup.app_config or {}).get("dataFolder") == DATA_FOLDER:
        task.progress(40, "Restoring the addons' data")
        addon_registry.restore_app(app, staged, task.log, names=names)
