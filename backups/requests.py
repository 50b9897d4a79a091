"""The requests that become backup, cleanup, restore and clone tasks (bodies: backups/task_bodies.py).

Two backups never run at once: every backup task has type `backup` (the task engine's global
`backup` lock); cleanup, restore and clone take that lock too, so retention never removes a
backup that is being read.
"""
import uuid

import peewee

import accounts
import apps
import domains
import eventlog
import tasks
from backups import box_restore, formats, records, settings
from core import config
from core.errors import BadRequest, Conflict, NotFound
from models import database
from models.apps import App
from models.backups import Backup
from models.tasks import Task

# What POST /cloudron/restore takes of `backupConfig`: where the backups are and the key, as the
# seed's restore sends them. Retention and schedule come back with the restored settings
# (settings.POLICY_FIELDS); anything else in the body is ignored.
RESTORE_CONFIG_FIELDS = (
    "provider", "format", "key",
    "backupFolder", "noHardlinks", "externalDisk",                                    # filesystem
    "bucket", "prefix", "region", "endpoint", "accessKeyId", "secretAccessKey",       # S3 family
    "acceptSelfSignedCerts", "signatureVersion",
)


# ---- backups and cleanup ------------------------------------------------------------------------

def full_backup_queued() -> int | None:
    row = (Task.select(Task.id).where((Task.body == "backup.full")
                                      & ((Task.pending == True) | (Task.active == True)))  # noqa: E712
           .first())
    return row.id if row is not None else None


def start_full_backup(actor: eventlog.Actor, scheduled: bool = False) -> int:
    running = full_backup_queued()
    if running is not None:
        raise Conflict(f"A backup is already running (task {running})")
    # No per-app locks: the task's `locks` column could not hold one per app on a busy server.
    # The task reads each app's state right before backing it up instead, and restore/clone
    # (the tasks that replace a data folder) wait for the `backup` lock this task holds.
    task_id = tasks.start("backup", "backup.full", {"scheduled": scheduled})
    eventlog.record("backup.start", actor, taskId=str(task_id), scheduled=scheduled)
    return task_id


def start_cleanup(actor: eventlog.Actor) -> int:
    running = (Task.select(Task.id).where((Task.type == "cleanBackups")
                                          & ((Task.pending == True) | (Task.active == True)))  # noqa: E712
               .first())
    if running is not None:
        raise Conflict(f"A cleanup is already running (task {running.id})")
    task_id = tasks.start("cleanBackups", "backup.cleanup", {}, locks=("backup",))
    eventlog.record("backup.cleanup.start", actor, taskId=str(task_id))
    return task_id


def _check_idle(app, allowed):
    if app.installation_state not in allowed:
        raise Conflict(f"App is {app.installation_state}; this needs it to be {' or '.join(allowed)}")
    if records.task_running(app.task_id):
        raise Conflict(f"App is busy with task {app.task_id}")


def start_app_backup(actor: eventlog.Actor, app_id: str) -> int:
    app = apps.get_app(app_id)
    _check_idle(app, ("installed",))
    task_id = tasks.start("backup", "backup.app", {"app_id": app.id}, app_id=app.id)
    eventlog.record("backup.start", actor, taskId=str(task_id), appId=app.id)
    return task_id


# ---- app restore and clone ----------------------------------------------------------------------

def _app_backup_of(app, backup_id):
    backup = Backup.get_or_raise(NotFound(f"No such backup of app {app.id}: {backup_id}"),
                                 (Backup.id == backup_id) & (Backup.type == "app") & (Backup.app_id == app.id))
    if backup.state != "normal":
        raise Conflict(f"Backup {backup_id} is {backup.state}, not complete")
    return backup


def start_app_restore(actor: eventlog.Actor, app_id: str, backup_id: str) -> int:
    app = apps.get_app(app_id)
    backup = _app_backup_of(app, backup_id)
    _check_idle(app, ("installed", "error"))
    cfg = backup.app_config or {}
    # The app comes back where it was backed up: that place must still be free of other apps.
    apps.check_location(cfg.get("location", app.location), cfg.get("domain", app.domain), exclude_app=app.id)
    apps.check_port_bindings(cfg.get("manifest") or app.manifest, cfg.get("portBindings"), exclude_app=app.id)
    previous = {"installationState": app.installation_state, "error": app.error}
    return apps.queue_task(app, "pending_restore", "backup.restore_app",
                           {"backup_id": backup.id, "previous": previous}, locks=("backup",),
                           actor=actor, action="app.restore", event={"backupId": backup.id})


def start_clone(actor: eventlog.Actor, app_id: str, body: dict) -> tuple[str, int]:
    source = apps.get_app(app_id)
    backup = _app_backup_of(source, body["backupId"])
    cfg = backup.app_config or records.app_config(source)
    location, domain = apps.check_location_and_domain(body.get("location", ""), body["domain"])
    manifest = cfg.get("manifest") or source.manifest
    bindings = apps.check_port_bindings(manifest, body.get("portBindings"))
    fields = records.config_fields({**cfg, "manifest": manifest})
    fields.update(location=location, domain=domain, port_bindings=bindings,
                  alternate_domains=[], redirect_domains=[])
    clone = App(id=str(uuid.uuid4()), app_store_id=cfg.get("appStoreId") or "",
                installation_state="pending_clone", run_state="running", **fields)
    try:
        clone.save(force_insert=True)
    except peewee.IntegrityError:
        raise Conflict(f"{domains.fqdn(location, domain)} is already in use") from None
    task_id = apps.queue_task(clone, "pending_clone", "backup.clone_app", {"backup_id": backup.id},
                              locks=("backup",), actor=actor, action="app.clone",
                              event={"sourceAppId": source.id, "backupId": backup.id,
                                     "fqdn": domains.fqdn(location, domain)})
    return clone.id, task_id


# ---- whole-Cloudron restore ---------------------------------------------------------------------

def _major_minor(version):
    return tuple((str(version or "").split(".") + ["0", "0"])[:2])


def _restore_config(body):
    """The storage config of a restore request, through the same validation as the stored config
    (backup_storage.validate_config: provider rules, endpoints, absolute normalised folders)."""
    raw = body.get("backupConfig")
    if not isinstance(raw, dict):
        raise BadRequest("must be an object", "backupConfig")
    wanted = {k: raw[k] for k in RESTORE_CONFIG_FIELDS if k in raw}
    return settings.validate({**wanted, "retentionSecs": settings.DEFAULT_RETENTION},
                             field_prefix="backupConfig.")


def _restore_backup_id(value):
    parts = [p for p in str(value or "").split("/") if p]
    if not parts or any(p in (".", "..") or "\0" in p for p in parts):
        raise BadRequest("must be a backup id such as <tag>/box_<time>_v<version>", "backupId")
    return "/".join(parts)


def start_cloudron_restore(body: dict, ip: str | None = None) -> int:
    """POST /cloudron/restore: only on a fresh, not activated instance, so the caller is not
    authenticated. The config is validated before anything is contacted, and the storage is only
    read (is the backup there?): a probe would write into whatever folder or endpoint an anonymous
    caller names. The download and restore run as a task (backups/box_restore.py)."""
    if accounts.is_activated():
        raise Conflict("Cloudron is already activated")
    cfg = _restore_config(body)
    backup_id = _restore_backup_id(body.get("backupId"))
    if _major_minor(body.get("version")) != _major_minor(config.get().version):
        raise Conflict(f"Backup is of version {body.get('version')}; this Berth is {config.get().version} "
                       "(major.minor must match)")
    if not settings.open_storage(cfg).exists(backup_id + formats.CHECKSUMS):
        raise BadRequest(f"no complete backup {backup_id} in this storage", "backupId")
    with database.atomic():
        # The activation lock row keeps a concurrent activation (or second restore) out while
        # this restore runs.
        if accounts.is_activated():
            raise Conflict("Cloudron is already activated")
        if box_restore.status()["active"]:
            raise Conflict("Already setting up or restoring")
        box_restore.take_lock()
        task_id = tasks.start("backup", "backup.restore_cloudron", {"backup_config": cfg, "backup_id": backup_id})
        box_restore.remember_task(task_id)
    eventlog.record("cloudron.restore", eventlog.Actor(ip=ip), backupId=backup_id, taskId=str(task_id))
    return task_id
