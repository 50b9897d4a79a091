"""The whole-Cloudron restore (POST /cloudron/restore; the request is backups.requests.
start_cloudron_restore): the platform database from a box backup, then every app from the app
backup the box backup depends on. Its steps, in order, each announced by its progress line:

    download_and_verify   5%   the box backup into scratch; a wrong key fails here, nothing touched
    restore_database     40%   the platform tables, and in the same transaction carry_over
                               (this instance's rows) and queue_app_restores (one task per app)
    finish_platform      45%   forget backups the storage no longer has, avatars, schedule
    wait_for_apps     50-95%   the app tasks, polled until each has ended

The instance is locked against activation from the request on (the `activated` setting row,
which accounts.sessions.activate inserts as its own lock); a restore that fails before the
database is replaced gives the lock back. A restore task that was killed cannot: the sweep
(backups.scheduled.sweep) does it, so GET /cloudron/status (status()) only reads.
"""
import json
import os
import shutil
import time

import accounts
import apps
import eventlog
from accounts import activation_lock
from backups import database_snapshots, formats, records, scratch, settings, snapshot_secrets
from core import data_paths
from models.apps import App
from models.backups import Backup
from models.settings import Setting
from models.tasks import Task
from tasks.context import TaskContext

RESTORE_SETTING = "cloudron_restore"     # {taskId} of the whole-Cloudron restore, for /cloudron/status
POLL_SECS = 0.5


# ---- status and the activation lock -------------------------------------------------------------

def _task():
    task_id = (Setting.read(RESTORE_SETTING) or {}).get("taskId")
    return Task.get_or_none(Task.id == task_id) if task_id is not None else None


def status() -> dict:
    """The `restore` object of GET /cloudron/status. Reads only."""
    task = _task()
    if task is None:
        return {"active": False, "message": "", "errorMessage": None}
    return {"active": bool(task.pending or task.active), "message": task.message or "",
            "errorMessage": (task.error or {}).get("message") if task.error else None}


def take_lock() -> None:
    activation_lock.hold()


def remember_task(task_id: int) -> None:
    Setting.put(RESTORE_SETTING, {"taskId": task_id})


def release_lock() -> None:
    """A failed restore that changed nothing gives the instance back to activation/restore."""
    activation_lock.release_if_unused()


def release_abandoned_lock() -> bool:
    """A restore task that died without cleaning up (killed, crashed) still holds the activation
    lock of an instance that has no users: give the instance back. True if it did."""
    task = _task()
    if task is None or task.pending or task.active or not task.error:
        return False
    if not activation_lock.is_held() or accounts.is_activated():
        return False
    release_lock()
    return True


# ---- the steps ----------------------------------------------------------------------------------

def download_and_verify(task: TaskContext, cfg: dict, backup_id: str, work: str) -> tuple[dict, dict]:
    """The box backup into `work`, checked against its checksum list. It must be encrypted
    exactly when the request brings a key (finding 3: a backup swapped for an unencrypted one
    is refused). Returns (snapshot info, the backup's stored metadata or {})."""
    key = cfg.get("key") or None
    storage = settings.open_storage(cfg)
    formats.unpack(cfg["format"], storage, backup_id, work, key=key, log=task.log,
                   expect_encrypted=key is not None)
    info = database_snapshots.read_info(work)
    try:
        meta = json.loads(storage.get_bytes(records.meta_path(backup_id)))
    except Exception:  # noqa: BLE001 - only figures for the list come from it
        meta = {}
    return info, meta


def carry_over(task: TaskContext, cfg: dict, backup_id: str, info: dict, meta: dict) -> None:
    """Inside the restore's transaction, after the copy: this instance's own rows. Its restore
    status, the activation lock, and the backup config that just worked with retention and
    schedule as the backup had them (settings.POLICY_FIELDS); the box row, which the snapshot
    holds still `creating` (it is taken while the box backup is made), with the final figures of
    its metadata; and what the snapshot left out (snapshot_secrets)."""
    restored = Setting.read(settings.SETTING) or {}
    policy = {k: v for k, v in restored.items() if k in settings.POLICY_FIELDS}
    Setting.put(settings.SETTING, {**{k: v for k, v in cfg.items() if k not in settings.POLICY_FIELDS}, **policy})
    Setting.put(RESTORE_SETTING, {"taskId": task.id})
    take_lock()
    if Backup.get_or_none(Backup.id == backup_id) is None:
        Backup.create(id=backup_id, remote_path=backup_id, type="box", format=cfg["format"],
                      version=info.get("version", ""), depends_on=meta.get("dependsOn") or [])
    Backup.update(state="normal", error=None, encrypted=bool(cfg.get("key")),
                  size=meta.get("size") or 0).where(Backup.id == backup_id).execute()
    snapshot_secrets.make_up_for_missing(task.log)
    eventlog.record("cloudron.restore", eventlog.SYSTEM, backupId=backup_id, taskId=str(task.id))


def queue_app_restores(backup_id: str) -> dict:
    """One task per app, queued in the restore's transaction so no app is ever seen pending
    without its task: the app backup the box backup depends on, or (no backup of it: its backups
    were disabled) a configure that brings it back with an empty data folder. Ports and
    containers are this host's: the app gets new ones. Returns {app id: task id}."""
    box = Backup.get_by_id(backup_id)
    by_app = {b.app_id: b.id for b in Backup.select().where(Backup.id.in_(box.depends_on or []))}
    started = {}
    for app in App.select().order_by(App.creation_time):
        if app.id in by_app:
            state, body, args = "pending_restore", "backup.restore_app", {"backup_id": by_app[app.id], "fresh": True}
        else:
            state, body, args = "pending_configure", "app.configure", {}
        started[app.id] = apps.queue_task(app, state, body, args, host_port=None, container_id="",
                                          health=None, error=None)
    return started


def restore_database(task: TaskContext, cfg: dict, backup_id: str, work: str, info: dict,
                     meta: dict) -> tuple[dict, dict]:
    """Replace the platform tables; returns ({table: rows}, {app id: task id})."""
    app_tasks = {}

    def keep():
        carry_over(task, cfg, backup_id, info, meta)
        app_tasks.update(queue_app_restores(backup_id))
    counts = database_snapshots.restore(work, keep=keep)
    task.log("restored tables: " + ", ".join(f"{t} ({n})" for t, n in sorted(counts.items())))
    return counts, app_tasks


def finish_platform(task: TaskContext, cfg: dict, work: str) -> None:
    # The snapshot was taken before that backup run pruned old backups: rows of backups that
    # are no longer in the storage are forgotten.
    for gone in records.forget_missing(settings.open_storage(cfg)):
        task.log(f"backup {gone} is listed in the restored database but not in the storage: forgotten")
    avatars = os.path.join(work, "avatars")
    if os.path.isdir(avatars):
        shutil.rmtree(data_paths.avatars(), ignore_errors=True)
        shutil.copytree(avatars, data_paths.avatars())
    settings.apply_schedule(settings.get_config())


def wait_for_apps(task: TaskContext, app_tasks: dict) -> list[dict]:
    """Poll the app tasks until each has ended; returns the failed ones."""
    total, waiting, failed = len(app_tasks), dict(app_tasks), []
    while waiting:
        task.progress(50 + int(45 * (total - len(waiting)) / total),
                      f"Restoring apps ({total - len(waiting)} of {total} done)")
        for app_id, app_task in list(waiting.items()):
            row = Task.get_by_id(app_task)
            if row.pending or row.active:
                continue
            if not row.success:
                failed.append({"appId": app_id, "taskId": str(app_task), "error": (row.error or {}).get("message")})
            del waiting[app_id]
        if waiting:
            time.sleep(POLL_SECS)
    return failed


def run(task: TaskContext, cfg: dict, backup_id: str) -> dict:
    """The task body. Nothing is changed until the box backup is downloaded and verified."""
    work = scratch.work_dir(task, "restore")
    try:
        try:
            task.progress(5, f"Downloading {backup_id}")
            info, meta = download_and_verify(task, cfg, backup_id, work)
            task.progress(40, f"Restoring the platform database ({info['dbType']})")
            counts, app_tasks = restore_database(task, cfg, backup_id, work, info, meta)
        except BaseException:
            release_lock()
            raise
        task.progress(45, "Restoring the platform files")
        finish_platform(task, cfg, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    failed = wait_for_apps(task, app_tasks)
    message = "Restored" + (f"; {len(failed)} app(s) failed: " + ", ".join(f["appId"] for f in failed)
                            if failed else "")
    task.progress(100, message)
    return {"backupId": backup_id, "tables": counts, "apps": len(app_tasks), "failedApps": failed}
