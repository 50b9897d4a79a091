"""What a backup is: its id, its row, the metadata stored beside it, and which rows are stale.

- A row of `backups` exists from the moment a backup starts (`creating`); it becomes `normal`
  only once the backup is packed, its checksum list is stored and it has been read back and
  verified; any failure, a stop, or a crash (noticed by `stale` / `mark_stale`) leaves `error`,
  and the next cleanup removes whatever the failed backup had written.
- IDs are Cloudron's path-like ones and double as the path in the storage:
  box `<tag>/box_<time>_v<platform version>`, app `<tag>/app_<appId>_<time>_v<app version>`,
  <tag> being the start of the backup run. Beside each backup the storage holds
  `<id>.meta.json` (what the backup is, without secrets) so it can be found and understood
  without this database.
"""
import datetime

import apps
import backup_storage
from backups import formats
from core import config
from core.errors import NotFound
from models import utcnow
from models.apps import App
from models.backups import Backup
from models.tasks import Task

# ---- ids ----------------------------------------------------------------------------------------

def _stamp(when: datetime.datetime) -> str:
    return when.strftime("%Y-%m-%d-%H%M%S-") + f"{when.microsecond // 1000:03d}"


def new_tag() -> str:
    return _stamp(utcnow())


def box_id(tag: str) -> str:
    return f"{tag}/box_{_stamp(utcnow())}_v{config.get().version}"


def app_backup_id(tag: str, app: App) -> str:
    return f"{tag}/app_{app.id}_{_stamp(utcnow())}_v{(app.manifest or {}).get('version', '0')}"


# ---- what an app backup records of its app ------------------------------------------------------

def app_config(app: App) -> dict:
    """Everything needed to recreate the app anywhere, besides its data folder."""
    return {
        "id": app.id, "appStoreId": app.app_store_id, "manifest": app.manifest,
        "location": app.location, "domain": app.domain,
        "alternateDomains": app.alternate_domains or [], "redirectDomains": app.redirect_domains or [],
        "portBindings": app.port_bindings or {}, "accessRestriction": app.access_restriction,
        "memoryLimit": app.memory_limit, "env": app.env or {}, "label": app.label, "tags": app.tags or [],
        "debugMode": app.debug_mode, "robotsTxt": app.robots_txt, "enableBackup": app.enable_backup,
        "enableAutomaticUpdate": app.enable_automatic_update, "runState": app.run_state,
    }


def config_fields(cfg: dict) -> dict:
    """App model fields from an app_config snapshot (what restore writes back)."""
    return {
        "manifest": cfg["manifest"], "location": cfg["location"], "domain": cfg["domain"],
        "alternate_domains": cfg.get("alternateDomains") or [],
        "redirect_domains": cfg.get("redirectDomains") or [],
        "port_bindings": cfg.get("portBindings") or {}, "access_restriction": cfg.get("accessRestriction"),
        "memory_limit": cfg.get("memoryLimit") or 0, "env": cfg.get("env") or {},
        "label": cfg.get("label") or "", "tags": cfg.get("tags") or [], "debug_mode": cfg.get("debugMode"),
        "robots_txt": cfg.get("robotsTxt") or "",
        "enable_backup": cfg.get("enableBackup", True),
        "enable_automatic_update": cfg.get("enableAutomaticUpdate", True),
    }


def meta(backup: Backup) -> dict:
    """What `<id>.meta.json` in the storage says about a backup. The app's env can hold secrets,
    so it is left out of the (plaintext) metadata of an encrypted backup."""
    cfg = dict(backup.app_config) if backup.app_config else None
    if cfg is not None and backup.encrypted:
        cfg.pop("env", None)
    return {"id": backup.id, "type": backup.type, "appId": backup.app_id, "format": backup.format,
            "version": backup.version, "dependsOn": backup.depends_on or [], "manifest": backup.manifest,
            "appConfig": cfg, "encrypted": backup.encrypted, "size": backup.size,
            "creationTime": backup.creation_time.isoformat() + "Z"}


def meta_path(remote: str) -> str:
    return remote + ".meta.json"


# ---- reading rows -------------------------------------------------------------------------------

def get_backup(backup_id: str) -> Backup:
    return Backup.get_or_raise(NotFound(f"No such backup: {backup_id}"), Backup.id == backup_id)


def list_box_backups(page: int = 1, per_page: int = 25) -> list[Backup]:
    """Complete box backups, newest first. Only `normal` rows are listed, so a stale `creating`
    row (marked `error` by the sweep) never shows: this read needs no write first."""
    return list(Backup.select().where((Backup.type == "box") & (Backup.state == "normal"))
                .order_by(Backup.creation_time.desc(), Backup.id.desc()).paginate(page, per_page))


def list_app_backups(app_id: str, page: int = 1, per_page: int = 25) -> list[Backup]:
    apps.get_app(app_id)
    return list(Backup.select().where((Backup.app_id == app_id) & (Backup.type == "app")
                                      & (Backup.state == "normal"))
                .order_by(Backup.creation_time.desc(), Backup.id.desc()).paginate(page, per_page))


def newest_box() -> Backup | None:
    return (Backup.select().where((Backup.type == "box") & (Backup.state == "normal"))
            .order_by(Backup.creation_time.desc()).first())


def newest_of_app(app_id: str) -> Backup | None:
    return (Backup.select().where((Backup.app_id == app_id) & (Backup.state == "normal"))
            .order_by(Backup.creation_time.desc()).first())


def task_running(task_id: int | None) -> bool:
    if task_id is None:
        return False
    row = Task.select(Task.pending, Task.active).where(Task.id == task_id).first()
    return row is not None and (row.pending or row.active)


# ---- stale and missing rows ---------------------------------------------------------------------

def stale() -> list[tuple[Backup, str]]:
    """(row, why) of each `creating` backup whose task is over without having said so (the task
    process was killed: server SIGKILL, crash, timeout). Reads only."""
    found = []
    for backup in Backup.select().where(Backup.state == "creating"):
        if task_running(backup.task_id):
            continue
        task = Task.get_or_none(Task.id == backup.task_id) if backup.task_id else None
        reason = ((task.error or {}).get("message") if task is not None else None) or "the task ended"
        found.append((backup, reason))
    return found


def mark_stale() -> None:
    """Stale backups are failed backups: mark them `error` so nothing ever takes them for good,
    and cleanup removes their data. Called by the sweep, cleanup and every backup task."""
    for backup, reason in stale():
        Backup.update(state="error", error={"message": f"Backup did not finish: {reason}",
                                            "stage": "unknown"}).where(
            (Backup.id == backup.id) & (Backup.state == "creating")).execute()


def forget_missing(storage: backup_storage.Storage) -> list[str]:
    """Delete the rows of `normal` backups whose checksum list is not in `storage` (they were
    removed there, e.g. after the snapshot of a restored database was taken). Returns their ids."""
    gone = []
    for backup in Backup.select().where(Backup.state == "normal"):
        if not storage.exists(backup.remote_path + formats.CHECKSUMS):
            Backup.delete().where(Backup.id == backup.id).execute()
            gone.append(backup.id)
    return gone
