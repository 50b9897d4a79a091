"""POST /apps/{id}/import: restore an app from a backup kept in another storage location than the
platform's (a backup copied to another folder or bucket, or made by another instance).

The request names the backup (its id, which is its path in that storage) and the storage's config
in the shape of /settings/backup_config (`password` accepted as Cloudron's name of `key`). The
config goes through the same validation as the platform's and the storage is probed (write, read
back, remove) before anything is queued; the platform's own backup config is never changed. The
task is the app restore (backups/task_bodies.restore_app) with another source: the backup is
downloaded and verified first, and only then does it replace the app's data folder and databases.
Unlike a restore, the app keeps its own settings (location, manifest, ...): an imported backup
brings its data, not another app's configuration, as on Cloudron.
"""
import json
import shutil

import apps
import containers
import eventlog
from apps import task_steps
from backups import formats, records, requests, scratch, settings, stages, task_bodies
from core.errors import BadRequest
from models import utcnow
from models.apps import App
from models.backups import Backup
from tasks.context import TaskContext


def _backup_id(value: object) -> str:
    parts = [p for p in str(value or "").split("/") if p]
    if not parts or any(p in (".", "..") or "\0" in p for p in parts):
        raise BadRequest("must be a backup id (its path in the storage)", "backupId")
    return "/".join(parts)


def storage_config(body: dict) -> dict:
    """The storage config of an import request, validated like the platform's; null: the
    platform's own storage."""
    raw = body.get("backupConfig")
    if raw is None:
        cfg = settings.get_config()
    else:
        if not isinstance(raw, dict):
            raise BadRequest("must be an object", "backupConfig")
        raw = dict(raw)
        if "password" in raw:   # Cloudron's name of the encryption password
            raw.setdefault("key", raw.pop("password"))
        cfg = requests._restore_config({"backupConfig": raw})
    if body.get("backupFormat"):
        cfg = {**cfg, "format": body["backupFormat"]}
    return cfg


def start_import(actor: eventlog.Actor, app_id: str, body: dict) -> int:
    app = apps.get_app(app_id)
    requests._check_idle(app, ("installed", "error"))
    backup_id = _backup_id(body.get("backupId"))
    cfg = storage_config(body)
    storage = settings.open_storage(cfg)
    storage.probe()                 # a StorageError is a 424 naming what failed
    if not storage.exists(backup_id + formats.CHECKSUMS):
        raise BadRequest(f"no complete backup {backup_id} in this storage", "backupId")
    previous = {"installationState": app.installation_state, "error": app.error}
    return apps.queue_task(app, "pending_import", "backup.import_app",
                           {"backup_id": backup_id, "backup_config": cfg, "previous": previous},
                           locks=("backup",), actor=actor, action="app.import",
                           event={"backupId": backup_id, "provider": cfg.get("provider"), "format": cfg["format"]})


# ---- the task -----------------------------------------------------------------------------------

def download(task: TaskContext, cfg: dict, backup_id: str, staged: str) -> Backup:
    """The backup from storage `cfg` into `staged`, verified, encrypted exactly when `cfg` has a
    key. Returns an unsaved Backup standing for it (what its stored metadata says: where the data
    folder and the database dumps are)."""
    storage = settings.open_storage(cfg)
    key = cfg.get("key") or None
    task.progress(10, f"Downloading backup {backup_id}")
    shutil.rmtree(staged, ignore_errors=True)
    formats.unpack(cfg["format"], storage, backup_id, staged, key=key, log=task.log,
                   expect_encrypted=key is not None)
    try:
        meta = json.loads(storage.get_bytes(records.meta_path(backup_id)))
    except Exception:  # noqa: BLE001 - without it the whole backup is the data folder
        meta = {}
    return Backup(id=backup_id, remote_path=backup_id, type="app", format=cfg["format"],
                  encrypted=key is not None, app_config=meta.get("appConfig") or None)


def import_app(task: TaskContext, app_id: str, backup_id: str, backup_config: dict,
               previous: dict | None = None, **_: object) -> dict:
    """The task body (`backup.import_app`): see the module docstring."""
    staged = scratch.staged_data(app_id, task)
    try:
        App.update(task_id=task.id, ts=utcnow()).where(App.id == app_id).execute()
        backup = download(task, backup_config, backup_id, staged)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        task_bodies._give_back(app_id, task, previous)   # nothing was touched: the app stays as it was
        raise
    with task_steps.run_app_task(task, app_id, "pending_import") as app:
        try:
            task.progress(30, "Stopping the app")
            containers.remove(app.id)
            task.progress(35, "Replacing the data folder")
            scratch.replace_data(app.id, stages.data_folder(backup, staged), task)
            stages.restore_addons(task, app, backup, staged)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
        task_steps.bring_up(task, app)
        if app.run_state == "stopped":
            containers.stop(app.id)
            task_steps.set_app(app.id, run_state="stopped")
            task_steps.write_proxy(task, app, "stopped")
    return {"appId": app_id, "backupId": backup_id}
