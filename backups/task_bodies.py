"""Backup task bodies: full (box + apps) and app backups, cleanup, app restore and clone, and the
whole-Cloudron restore. They run in task processes (tasks.child).

Honest outcomes: every backup goes through the stages snapshot -> upload -> verify (-> prune for
a full backup), each recorded with its outcome and size on the backup row and in the task's
`result`. A backup row turns `normal` only after the verify stage read the stored backup back
against its checksum list; any exception (storage error, full disk, stop) leaves it `error`
with the stage that failed, the task fails with "<stage> failed: <storage's message>", and a
notification is raised. A SIGKILL leaves the row `creating`; backups.mark_stale turns it into
`error` once the task is seen to be over.
"""
import json
import logging
import os
import shutil
import time

from apps import task_steps
import apps
import eventlog
from backups import formats
import backups
from core import config
import containers
from backups import database_snapshots
from eventlog import notifications
import reverse_proxy
import tasks
from core.errors import ApiError
from models import Setting, utcnow
from models.apps import App
from models.backups import Backup
from models.tasks import Task
from tasks.context import TaskStopped

log = logging.getLogger("berth.backups")
STAGES = ("snapshot", "upload", "verify")


class StageFailed(ApiError):
    """A backup stage failed; the message names the stage and carries the underlying reason."""
    status = 424

    def __init__(self, stage, what, reason, stages=None):
        super().__init__(f"{stage} of {what} failed: {reason}")
        self.stage = stage
        self.code = f"{stage}Failed"
        self.result = {"stages": stages} if stages else None  # recorded as the task's result


def _reason(exc):
    return getattr(exc, "message", None) or str(exc) or type(exc).__name__


def _work_root():
    return os.path.join(config.get().data_dir, "backup-work")


def _work_dir(task, name):
    path = os.path.join(_work_root(), f"{task.id}-{name}")
    shutil.rmtree(path, ignore_errors=True)
    return path


def _remove_leftovers(task):
    """Local scratch of tasks that were killed: platform snapshots under <data>/backup-work and
    half-downloaded restores beside app data folders (`data.restore-<task>`, `data.old-<task>`)."""
    def finished(task_id):
        return task_id.isdigit() and not backups.task_running(int(task_id))
    root = _work_root()
    for name in os.listdir(root) if os.path.isdir(root) else ():
        if finished(name.split("-", 1)[0]):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
    apps_root = os.path.join(config.get().data_dir, "apps")
    for app_id in os.listdir(apps_root) if os.path.isdir(apps_root) else ():
        folder = os.path.join(apps_root, app_id)
        for name in sorted(os.listdir(folder)):
            if not name.startswith(("data.restore-", "data.old-")) or not finished(name.rsplit("-", 1)[-1]):
                continue
            if name.startswith("data.old-") and not os.path.lexists(os.path.join(folder, "data")):
                # Killed between moving the data folder aside and putting the restored one in
                # place: the app's own data goes back, never away.
                task.log(f"putting back the data folder of app {app_id} from {name}")
                os.rename(os.path.join(folder, name), os.path.join(folder, "data"))
                continue
            task.log(f"removing the leftover {app_id}/{name}")
            shutil.rmtree(os.path.join(folder, name), ignore_errors=True)


def _tree_size(path):
    total, files = 0, 0
    for root, dirs, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
                files += 1
            except OSError:
                pass
    return total, files


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


def _backup_one(task, storage, cfg, row_fields, prepare, what):
    """Create one backup: the row (`creating`), then the stages. `prepare()` returns the folder to
    pack and the snapshot stage's figures. Returns {id, type, appId, stages, size}."""
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
        checked = formats.verify(cfg["format"], storage, backup.remote_path, key=key) or {}
        stages["verify"] = {"outcome": "ok", "size": packed.get("size", 0),
                            "seconds": round(time.monotonic() - started, 3),
                            **{k: v for k, v in checked.items() if isinstance(v, (int, float, str, bool))}}
        backup = Backup.get_by_id(backup.id)
        storage.put_bytes(backups.meta_path(backup.remote_path), json.dumps(backups.meta(backup)).encode())
        # Only now, with everything written and read back, is the backup good.
        Backup.update(state="normal", stages=stages, error=None).where(Backup.id == backup.id).execute()
    except BaseException as e:  # noqa: B902 - a stop must leave `error` too, then go on stopping
        stopped = isinstance(e, TaskStopped)
        reason = "the task was stopped" if stopped else _reason(e)
        stages[stage] = {"outcome": "stopped" if stopped else "failed", "error": reason}
        for later in STAGES[STAGES.index(stage) + 1:]:
            stages.setdefault(later, {"outcome": "skipped"})
        Backup.update(state="error", stages=stages, error={"message": reason, "stage": stage}).where(
            Backup.id == backup.id).execute()
        task.log(f"{what}: {stage} {'stopped' if stopped else 'failed'}: {reason}")
        if stopped:
            raise
        raise StageFailed(stage, what, reason, stages) from e
    task.log(f"{what}: backed up as {backup.id} ({stages['upload']['size']} bytes stored)")
    return {"id": backup.id, "type": backup.type, "appId": backup.app_id, "size": stages["upload"]["size"],
            "stages": stages}


def _app_backup(task, storage, cfg, app, tag):
    def prepare(backup):
        src = apps.data_dir(app.id)
        if not os.path.isdir(src):
            os.makedirs(src, exist_ok=True)
        size, files = _tree_size(src)
        return src, {"size": size, "files": files}
    fields = {"id": backups.app_backup_id(tag, app), "type": "app", "app_id": app.id,
              "version": (app.manifest or {}).get("version", ""), "manifest": app.manifest,
              "app_config": backups.app_config(app)}
    fields["remote_path"] = fields["id"]
    return _backup_one(task, storage, cfg, fields, prepare, f"app {apps.fqdn(app)}")


def _box_backup(task, storage, cfg, tag, depends_on, work):
    def prepare(backup):
        # The box row (with its dependsOn) exists before the snapshot, so a restored database
        # knows which app backups belong to it.
        src = os.path.join(work, "box")
        info = database_snapshots.snapshot(src)
        avatars = os.path.join(config.get().data_dir, "avatars")
        if os.path.isdir(avatars):
            shutil.copytree(avatars, os.path.join(src, "avatars"))
        size, files = _tree_size(src)
        return src, {"size": size, "files": files, "database": info["dbType"],
                     "databaseSize": info["size"]}
    box = backups.box_id(tag)
    fields = {"id": box, "remote_path": box, "type": "box", "version": config.get().version,
              "depends_on": depends_on}
    return _backup_one(task, storage, cfg, fields, prepare, "the platform")


def _totals(entries, prune=None):
    stages = {}
    for name in STAGES:
        outcomes = [e["stages"].get(name, {}) for e in entries]
        ok = bool(outcomes) and all(o.get("outcome") == "ok" for o in outcomes)
        stages[name] = {"outcome": "ok" if ok else "failed",
                        "size": sum(o.get("size", 0) or 0 for o in outcomes)}
    if prune is not None:
        stages["prune"] = prune
    return stages


def _notify_failure(title, exc, task):
    try:
        notifications.add(title, f"{_reason(exc)}\n\nTask {task.id}; see its log for details.")
        eventlog.record("backup.finish", backups.SYSTEM, taskId=str(task.id), errorMessage=_reason(exc))
    except Exception:  # noqa: BLE001 - the failure itself is what must be reported
        log.exception("could not record the backup failure")


def _prune(task):
    try:
        outcome = cleanup_backups(task)
        return {"outcome": "ok", "removed": len(outcome["removed"]), "size": outcome["removedBytes"],
                "failed": len(outcome["failed"])}
    except Exception as e:  # noqa: BLE001 - the backup itself is good; say the prune failed
        task.log(f"prune failed: {_reason(e)}")
        _notify_failure("Removing old backups failed", e, task)
        return {"outcome": "failed", "error": _reason(e)}


# ---- bodies -------------------------------------------------------------------------------------

def _prepare(cfg):
    """Refuse a noop storage (nothing would be kept) and end stale `creating` backups first."""
    if cfg.get("provider") == "noop":
        raise StageFailed("upload", "the backup", "backups are disabled (the backup storage is noop)")
    backups.mark_stale()


def full_backup(task, scheduled=False, **_):
    """Every app with backups enabled, then the platform database; the box backup depends on
    one app backup per app. Result: {backupId, stages{snapshot, upload, verify, prune}, backups[]}."""
    cfg = backups.get_config()
    try:
        _prepare(cfg)
        storage = backups.open_storage(cfg)
        tag = backups.new_tag()
        work = _work_dir(task, "full")
        entries, depends_on = [], []
        candidates = list(App.select().order_by(App.creation_time))
        steps = len(candidates) + 2
        try:
            for i, app in enumerate(candidates):
                app = App.get_or_none(App.id == app.id)   # as it is now, not when the run started
                if app is None:
                    continue
                if not app.enable_backup:
                    task.log(f"app {app.id}: automatic backups disabled, skipped")
                    continue
                if app.installation_state != "installed":
                    # Not in a state to read consistently: its newest good backup stands in.
                    last = (Backup.select().where((Backup.app_id == app.id) & (Backup.state == "normal"))
                            .order_by(Backup.creation_time.desc()).first())
                    task.log(f"app {app.id} is {app.installation_state}: "
                             + (f"using its last backup {last.id}" if last else "no backup of it exists"))
                    if last is not None:
                        depends_on.append(last.id)
                    continue
                task.progress(5 + int(85 * i / steps),
                              f"Backing up {apps.fqdn(app)} ({i + 1}/{len(candidates)})")
                entry = _app_backup(task, storage, cfg, app, tag)
                entries.append(entry)
                depends_on.append(entry["id"])
            task.progress(5 + int(85 * (steps - 2) / steps), "Backing up the platform")
            box = _box_backup(task, storage, cfg, tag, depends_on, work)
            entries.append(box)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        task.progress(95, "Removing old backups")
        prune = _prune(task)
    except Exception as e:
        _notify_failure("Backup failed", e, task)
        raise
    task.progress(100, f"Backed up as {box['id']}")
    eventlog.record("backup.finish", backups.SYSTEM, taskId=str(task.id), backupId=box["id"])
    return {"backupId": box["id"], "stages": _totals(entries, prune), "backups": entries}


def app_backup(task, app_id, **_):
    cfg = backups.get_config()
    try:
        _prepare(cfg)
        app = apps.get_app(app_id)
        task.progress(10, f"Backing up {apps.fqdn(app)}")
        entry = _app_backup(task, backups.open_storage(cfg), cfg, app, backups.new_tag())
    except Exception as e:
        _notify_failure("App backup failed", e, task)
        raise
    task.progress(100, f"Backed up as {entry['id']}")
    return {"backupId": entry["id"], "stages": entry["stages"], "backups": [entry]}


def cleanup_backups(task):
    """Apply retention (backups.retention_plan): remove the data, then the row, of each backup
    to go; a removal the storage refuses keeps the row (tried again next time). Also removes the
    leftovers of backup runs that have no backup left (partial uploads of killed tasks)."""
    backups.mark_stale()
    _remove_leftovers(task)
    cfg = backups.get_config()
    storage = backups.open_storage(cfg)
    keep, remove = backups.retention_plan()
    removed, failed, removed_bytes = [], [], 0
    for backup in remove:
        try:
            formats.remove(backup.format, storage, backup.remote_path)
            storage.remove(backups.meta_path(backup.remote_path))
        except Exception as e:  # noqa: BLE001 - one stuck backup must not keep the others
            task.log(f"could not remove {backup.id}: {_reason(e)}")
            failed.append({"id": backup.id, "error": _reason(e)})
            continue
        Backup.delete().where(Backup.id == backup.id).execute()
        removed.append(backup.id)
        removed_bytes += backup.size or 0
        task.log(f"removed {backup.state} backup {backup.id}")
    for tag in sorted({b.split("/", 1)[0] for b in removed if "/" in b}):
        if not Backup.select().where(Backup.id.startswith(tag + "/")).exists():
            try:
                storage.remove_prefix(tag + "/")
            except Exception as e:  # noqa: BLE001
                task.log(f"could not remove leftovers under {tag}/: {_reason(e)}")
    return {"removed": removed, "kept": [b.id for b in keep], "failed": failed, "removedBytes": removed_bytes}


def cleanup(task, **_):
    task.progress(10, "Removing old backups")
    try:
        outcome = cleanup_backups(task)
    except Exception as e:
        _notify_failure("Removing old backups failed", e, task)
        raise
    task.progress(100, f"Removed {len(outcome['removed'])} backup(s)")
    return outcome


# ---- restore and clone --------------------------------------------------------------------------

def _unpack(task, backup, dest, cfg=None, storage=None):
    cfg = cfg or backups.get_config()
    storage = storage or backups.open_storage(cfg)
    shutil.rmtree(dest, ignore_errors=True)
    key = cfg.get("key") or None
    if backup.encrypted and not key:
        raise StageFailed("download", f"backup {backup.id}",
                          "the backup is encrypted but the backup configuration has no key")
    return formats.unpack(backup.format, storage, backup.remote_path, dest,
                                 key=key if backup.encrypted else None, log=task.log)


def _replace_data(app_id, staged, task):
    data = apps.data_dir(app_id)
    old = f"{data}.old-{task.id}"
    if os.path.lexists(data):
        os.rename(data, old)
    os.rename(staged, data)
    shutil.rmtree(old, ignore_errors=True)


def _download(task, backup_id, staged):
    backup = backups.get_backup(backup_id)
    task.progress(10, f"Downloading backup {backup.id}")
    _unpack(task, backup, staged)
    return backup


def restore_app(task, app_id, backup_id, previous=None, fresh=False, **_):
    """The app comes back exactly as backed up. The backup is downloaded beside the data folder
    first; only when that worked (right key, complete, verified) is the app touched: container
    removed, data folder swapped, the app row set to the backed-up configuration, container
    re-created. A failure before that point leaves the app as it was (`fresh`: an app of a
    whole-Cloudron restore, which has nothing to go back to, goes to `error` like any failure)."""
    staged = f"{apps.data_dir(app_id)}.restore-{task.id}"
    if not fresh:
        try:
            App.update(task_id=task.id, ts=utcnow()).where(App.id == app_id).execute()
            backup = _download(task, backup_id, staged)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            previous = previous or {"installationState": "installed", "error": None}
            App.update(installation_state=previous["installationState"], error=previous.get("error"),
                       task_id=None, ts=utcnow()).where(
                (App.id == app_id) & (App.task_id == task.id)).execute()
            raise
    with task_steps.run_app_task(task, app_id, "pending_restore") as app:
        try:
            if fresh:
                backup = _download(task, backup_id, staged)
            task.progress(30, "Stopping the app")
            containers.remove(app.id)
            task.progress(35, "Replacing the data folder")
            _replace_data(app.id, staged, task)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
        old_fqdn = apps.fqdn(app)
        if backup.app_config:
            App.update(**backups.config_fields(backup.app_config), update_time=utcnow()).where(
                App.id == app.id).execute()
        app = App.get_by_id(app.id)
        if apps.fqdn(app) != old_fqdn and app.id in reverse_proxy.vhosts():
            reverse_proxy.remove_app_vhost(app.id)
        task_steps.bring_up(task, app)
        if (backup.app_config or {}).get("runState") == "stopped":
            containers.stop(app.id)
            App.update(run_state="stopped").where(App.id == app.id).execute()
            task_steps.write_proxy(task, app, "stopped")
        else:
            App.update(run_state="running").where(App.id == app.id).execute()
    return {"appId": app_id, "backupId": backup.id}


def clone_app(task, app_id, backup_id, **_):
    with task_steps.run_app_task(task, app_id, "pending_clone") as app:
        staged = f"{apps.data_dir(app.id)}.restore-{task.id}"
        try:
            backup = _download(task, backup_id, staged)
            _replace_data(app.id, staged, task)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
        task_steps.bring_up(task, app)
    return {"appId": app_id, "backupId": backup.id}


def restore_cloudron(task, backup_config, backup_id, **_):
    """POST /cloudron/restore: the platform database from a box backup, then every app from the
    app backup the box backup depends on (app tasks, waited for). Nothing is changed until the
    box backup is downloaded and verified: a wrong key fails first, with nothing touched."""
    cfg = backup_config
    work = _work_dir(task, "restore")
    try:
        try:
            task.progress(5, f"Downloading {backup_id}")
            formats.unpack(cfg["format"], backups.open_storage(cfg), backup_id, work,
                                  key=cfg.get("key") or None, log=task.log)
            info = database_snapshots.read_info(work)
            storage = backups.open_storage(cfg)
            try:
                meta = json.loads(storage.get_bytes(backups.meta_path(backup_id)))
            except Exception:  # noqa: BLE001 - only figures for the list come from it
                meta = {}
            task.progress(40, f"Restoring the platform database ({info['dbType']})")
            app_tasks_started = {}

            def keep():
                # Inside the restore's transaction, after the copy: this instance's own rows (its
                # restore status, the activation lock, the backup config that just worked, with
                # retention and schedule as the backup had them), and one task per app, queued
                # in the same transaction so no app is ever seen pending without its task.
                restored = Setting.get_or_none(Setting.name == backups.SETTING)
                policy = {k: v for k, v in ((restored.value or {}) if restored else {}).items()
                          if k in backups.POLICY_FIELDS}
                merged = {**{k: v for k, v in cfg.items() if k not in backups.POLICY_FIELDS}, **policy}
                for name, value in ((backups.SETTING, merged), (backups.RESTORE_SETTING, {"taskId": task.id}),
                                    ("activated", True)):
                    Setting.insert(name=name, value=value).on_conflict(
                        conflict_target=[Setting.name], update={Setting.value: value}).execute()
                # The box row in the snapshot was still `creating` (the snapshot is taken while it
                # is made); the metadata written once it was complete has the final figures.
                if Backup.get_or_none(Backup.id == backup_id) is None:
                    Backup.create(id=backup_id, remote_path=backup_id, type="box", format=cfg["format"],
                                  version=info.get("version", ""), depends_on=meta.get("dependsOn") or [])
                Backup.update(state="normal", error=None, encrypted=bool(cfg.get("key")),
                              size=meta.get("size") or 0).where(Backup.id == backup_id).execute()
                eventlog.record("cloudron.restore", backups.SYSTEM, backupId=backup_id, taskId=str(task.id))
                box = Backup.get_by_id(backup_id)
                by_app = {b.app_id: b.id for b in Backup.select().where(Backup.id.in_(box.depends_on or []))}
                for app in App.select().order_by(App.creation_time):
                    # Ports and containers are this host's: the app gets new ones.
                    if app.id in by_app:
                        state, body = "pending_restore", "backup.restore_app"
                        args = {"app_id": app.id, "backup_id": by_app[app.id], "fresh": True}
                    else:
                        # No backup of it in this box backup (its backups were disabled):
                        # it comes back with an empty data folder.
                        state, body, args = "pending_configure", "app.configure", {"app_id": app.id}
                    app_task = tasks.start("app", body, args, app_id=app.id)
                    App.update(installation_state=state, task_id=app_task, host_port=None, container_id="",
                               health=None, error=None).where(App.id == app.id).execute()
                    app_tasks_started[app.id] = app_task

            counts = database_snapshots.restore(work, keep=keep)
        except BaseException:
            backups.release_restore_lock()
            raise
        task.log("restored tables: " + ", ".join(f"{t} ({n})" for t, n in sorted(counts.items())))
        # The snapshot was taken before that backup run pruned old backups: rows of backups that
        # are no longer in the storage are forgotten.
        for gone in backups.forget_missing(backups.open_storage(cfg)):
            task.log(f"backup {gone} is listed in the restored database but not in the storage: forgotten")
        avatars = os.path.join(work, "avatars")
        if os.path.isdir(avatars):
            target = os.path.join(config.get().data_dir, "avatars")
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(avatars, target)
        backups.apply_schedule(backups.get_config())
    finally:
        shutil.rmtree(work, ignore_errors=True)

    total = len(app_tasks_started)
    waiting = dict(app_tasks_started)
    failed = []
    while waiting:
        task.progress(50 + int(45 * (total - len(waiting)) / total),
                      f"Restoring apps ({total - len(waiting)} of {total} done)")
        for app_id, app_task in list(waiting.items()):
            row = Task.get_by_id(app_task)
            if row.pending or row.active:
                continue
            if not row.success:
                failed.append({"appId": app_id, "taskId": str(app_task),
                               "error": (row.error or {}).get("message")})
            del waiting[app_id]
        if waiting:
            time.sleep(0.5)
    message = "Restored" + (f"; {len(failed)} app(s) failed: " + ", ".join(f["appId"] for f in failed)
                            if failed else "")
    task.progress(100, message)
    return {"backupId": backup_id, "tables": counts, "apps": len(app_tasks_started), "failedApps": failed}
