"""Backups: the storage configuration, what a backup is, retention, and the requests that become
backup, cleanup, restore and clone tasks (their bodies are in backup_tasks.py).

What is where:
- The storage and the archive formats are backup_storage / backup_formats; this module only
  decides *what* goes where and in which state it is.
- A row of `backups` exists from the moment a backup starts (`creating`); it becomes `normal`
  only once the backup is packed, its checksum list is stored and it has been read back and
  verified; any failure, a stop, or a crash (noticed by `mark_stale`) leaves `error`, and the next
  cleanup removes whatever the failed backup had written.
- IDs are Cloudron's path-like ones and double as the path in the storage:
  box `<tag>/box_<time>_v<platform version>`, app `<tag>/app_<appId>_<time>_v<app version>`,
  <tag> being the start of the backup run. Beside each backup the storage holds
  `<id>.meta.json` (what the backup is, without secrets) so it can be found and understood
  without this database.
- Two backups never run at once: every backup task has type `backup` (the task engine's global
  `backup` lock); cleanup, restore and clone take that lock too, so retention never removes a
  backup that is being read.
"""
import itertools
import logging
import uuid

import peewee

import accounts
import apps
import eventlog
from backups import formats
import backup_storage
from core import config
import domains
from apps import manifests
import tasks
from core.errors import BadRequest, Conflict, NotFound
from models import Setting, database, utcnow
from models.apps import App
from models.backups import Backup
from models.tasks import Task
from tasks import schedules

log = logging.getLogger("berth.backups")

SETTING = "backup_config"
RESTORE_SETTING = "cloudron_restore"     # {taskId} of the whole-Cloudron restore, for /cloudron/status
DAY = 86400
DEFAULT_RETENTION = backup_storage.DEFAULT_RETENTION_SECS
DAILY_PATTERN = "00 00 23 * * *"
CLEANUP_PATTERN = "00 30 */6 * * *"      # every six hours
BACKUP_SCHEDULE = "backup"
CLEANUP_SCHEDULE = "backup-cleanup"
SYSTEM = eventlog.Actor(username="berth")
# What a whole-Cloudron restore takes from the restored settings rather than from the request
# (the request says where the backups are; how often and how long is the platform's policy).
POLICY_FIELDS = ("retentionSecs", "intervalSecs", "schedulePattern", "syncConcurrency")


# ---- configuration ----------------------------------------------------------------------------

def default_config():
    return backup_storage.default_config(config.get().data_dir)


def get_config():
    """The stored config (secrets in clear), or the default of a fresh instance."""
    row = Setting.get_or_none(Setting.name == SETTING)
    return dict(row.value) if row and row.value else default_config()


def masked_config():
    return backup_storage.masked(get_config())


def _save_setting(name, value):
    Setting.insert(name=name, value=value).on_conflict(
        conflict_target=[Setting.name], update={Setting.value: value}).execute()


def validate(body, stored=None, field_prefix=""):
    """A full config from a request body: masked secrets take the stored value, then storage
    validation (backup_storage.validate_config) and our own checks. Raises BadRequest."""
    cfg = backup_storage.unmask(body, stored)
    pattern = cfg.get("schedulePattern")
    if pattern:
        try:
            cfg["schedulePattern"] = schedules.validate(pattern)
        except BadRequest as e:
            raise BadRequest(e.message.split(": ", 1)[-1], field_prefix + "schedulePattern") from None
    try:
        cfg = backup_storage.validate_config(cfg)
    except BadRequest as e:
        if field_prefix:
            raise BadRequest(f"{field_prefix}{e.message}") from None
        raise
    return cfg


def open_storage(cfg=None):
    return backup_storage.open_storage(cfg or get_config())


def set_config(actor, body):
    """Validate, test the storage (write, read back, delete a probe; its own error -> 424), save,
    and move the backup schedule to the new pattern."""
    stored = get_config()
    cfg = validate(body, stored)
    open_storage(cfg).probe()
    _save_setting(SETTING, cfg)
    apply_schedule(cfg)
    eventlog.record("backup.config", actor, provider=cfg.get("provider"), format=cfg.get("format"),
                 retentionSecs=cfg.get("retentionSecs"), encrypted=bool(cfg.get("key")))
    return cfg


# ---- schedules ----------------------------------------------------------------------------------

def schedule_pattern(cfg):
    """The cron pattern of automatic backups: schedulePattern if set, else one derived from
    intervalSecs (daily at 23:00, every N days at 23:00, or every N hours on the hour)."""
    if cfg.get("schedulePattern"):
        return cfg["schedulePattern"]
    interval = int(cfg.get("intervalSecs") or DAY)
    hours = max(6, interval // 3600)
    if hours >= 24:
        days = hours // 24
        return DAILY_PATTERN if days == 1 else f"00 00 23 */{days} * *"
    return f"00 00 */{hours} * * *"


def register():
    """At server start: the automatic backup (from the stored config) and the six-hourly cleanup."""
    schedules.ensure(BACKUP_SCHEDULE, schedule_pattern(get_config()), "backup.scheduled")
    schedules.ensure(CLEANUP_SCHEDULE, CLEANUP_PATTERN, "backup.scheduled_cleanup")


def apply_schedule(cfg):
    schedules.save(BACKUP_SCHEDULE, schedule_pattern(cfg), "backup.scheduled")


def scheduled_backup(fire_time=None):
    cfg = get_config()
    if cfg.get("provider") == "noop":
        return None
    if _full_backup_queued() is not None:
        log.info("scheduled backup skipped: a backup is already queued or running")
        return None
    if not cfg.get("schedulePattern"):
        # Cloudron's rule: an interval schedule skips a run when the newest backup is less than
        # an hour short of the interval old (a manual backup just made counts).
        newest = _newest_box()
        interval = int(cfg.get("intervalSecs") or DAY)
        if newest is not None and (utcnow() - newest.creation_time).total_seconds() < interval - 3600:
            log.info("scheduled backup skipped: %s is recent enough", newest.id)
            return None
    try:
        return start_full_backup(SYSTEM, scheduled=True)
    except Conflict as e:   # started by hand meanwhile
        log.info("scheduled backup skipped: %s", e.message)
        return None


def scheduled_cleanup(fire_time=None):
    try:
        return start_cleanup(SYSTEM)
    except Conflict as e:
        log.info("scheduled cleanup skipped: %s", e.message)
        return None


# ---- ids and rows -------------------------------------------------------------------------------

def _stamp(when):
    return when.strftime("%Y-%m-%d-%H%M%S-") + f"{when.microsecond // 1000:03d}"


def new_tag():
    return _stamp(utcnow())


def box_id(tag):
    return f"{tag}/box_{_stamp(utcnow())}_v{config.get().version}"


def app_backup_id(tag, app):
    return f"{tag}/app_{app.id}_{_stamp(utcnow())}_v{(app.manifest or {}).get('version', '0')}"


def app_config(app):
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


def config_fields(cfg):
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


def meta(backup):
    """What `<id>.meta.json` in the storage says about a backup. The app's env can hold secrets,
    so it is left out of the (plaintext) metadata of an encrypted backup."""
    cfg = dict(backup.app_config) if backup.app_config else None
    if cfg is not None and backup.encrypted:
        cfg.pop("env", None)
    return {"id": backup.id, "type": backup.type, "appId": backup.app_id, "format": backup.format,
            "version": backup.version, "dependsOn": backup.depends_on or [], "manifest": backup.manifest,
            "appConfig": cfg, "encrypted": backup.encrypted, "size": backup.size,
            "creationTime": backup.creation_time.isoformat() + "Z"}


def meta_path(remote):
    return remote + ".meta.json"


def get_backup(backup_id):
    backup = Backup.get_or_none(Backup.id == backup_id)
    if backup is None:
        raise NotFound(f"No such backup: {backup_id}")
    return backup


def list_box_backups(page=1, per_page=25):
    mark_stale()
    return list(Backup.select().where((Backup.type == "box") & (Backup.state == "normal"))
                .order_by(Backup.creation_time.desc(), Backup.id.desc()).paginate(page, per_page))


def list_app_backups(app_id, page=1, per_page=25):
    apps.get_app(app_id)
    return list(Backup.select().where((Backup.app_id == app_id) & (Backup.type == "app")
                                      & (Backup.state == "normal"))
                .order_by(Backup.creation_time.desc(), Backup.id.desc()).paginate(page, per_page))


def _newest_box():
    return (Backup.select().where((Backup.type == "box") & (Backup.state == "normal"))
            .order_by(Backup.creation_time.desc()).first())


def task_running(task_id):
    if task_id is None:
        return False
    row = Task.select(Task.pending, Task.active).where(Task.id == task_id).first()
    return row is not None and (row.pending or row.active)


def mark_stale():
    """`creating` backups whose task is over without having said so (the task process was killed:
    server SIGKILL, crash, timeout) are failed backups: mark them `error` so nothing ever takes
    them for good, and cleanup removes their data."""
    for backup in Backup.select().where(Backup.state == "creating"):
        if task_running(backup.task_id):
            continue
        task = Task.get_or_none(Task.id == backup.task_id) if backup.task_id else None
        reason = ((task.error or {}).get("message") if task is not None else None) or "the task ended"
        Backup.update(state="error", error={"message": f"Backup did not finish: {reason}",
                                            "stage": "unknown"}).where(
            (Backup.id == backup.id) & (Backup.state == "creating")).execute()


def forget_missing(storage):
    """Delete the rows of `normal` backups whose checksum list is not in `storage` (they were
    removed there, e.g. after the snapshot of a restored database was taken). Returns their ids."""
    gone = []
    for backup in Backup.select().where(Backup.state == "normal"):
        if not storage.exists(backup.remote_path + formats.CHECKSUMS):
            Backup.delete().where(Backup.id == backup.id).execute()
            gone.append(backup.id)
    return gone


# ---- starting work ------------------------------------------------------------------------------

def _full_backup_queued():
    row = (Task.select(Task.id).where((Task.body == "backup.full")
                                      & ((Task.pending == True) | (Task.active == True)))  # noqa: E712
           .first())
    return row.id if row is not None else None


def start_full_backup(actor, scheduled=False):
    running = _full_backup_queued()
    if running is not None:
        raise Conflict(f"A backup is already running (task {running})")
    # No per-app locks: the task's `locks` column could not hold one per app on a busy server.
    # The task reads each app's state right before backing it up instead, and restore/clone
    # (the tasks that replace a data folder) wait for the `backup` lock this task holds.
    task_id = tasks.start("backup", "backup.full", {"scheduled": scheduled})
    eventlog.record("backup.start", actor, taskId=str(task_id), scheduled=scheduled)
    return task_id


def start_cleanup(actor):
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
    if task_running(app.task_id):
        raise Conflict(f"App is busy with task {app.task_id}")


def start_app_backup(actor, app_id):
    app = apps.get_app(app_id)
    _check_idle(app, ("installed",))
    task_id = tasks.start("backup", "backup.app", {"app_id": app.id}, app_id=app.id)
    eventlog.record("backup.start", actor, taskId=str(task_id), appId=app.id)
    return task_id


def _app_backup_of(app, backup_id):
    backup = Backup.get_or_none(Backup.id == backup_id)
    if backup is None or backup.type != "app" or backup.app_id != app.id:
        raise NotFound(f"No such backup of app {app.id}: {backup_id}")
    if backup.state != "normal":
        raise Conflict(f"Backup {backup_id} is {backup.state}, not complete")
    return backup


def _check_ports(manifest, bindings, exclude_app):
    """Ports of a restored app: must be declared and not bound by another app (the app's own
    ports are of course in use by its own container, which restore replaces)."""
    declared = manifests.declared_ports(manifest)
    for env_name, port in (bindings or {}).items():
        if env_name not in declared:
            raise BadRequest("is not a port the manifest declares", f"portBindings.{env_name}")
        for other in App.select(App.id, App.port_bindings).where(App.id != exclude_app):
            if port in (other.port_bindings or {}).values():
                raise Conflict(f"Port {port} of the backup is now used by app {other.id}")


def start_app_restore(actor, app_id, backup_id):
    app = apps.get_app(app_id)
    backup = _app_backup_of(app, backup_id)
    _check_idle(app, ("installed", "error"))
    cfg = backup.app_config or {}
    # The app comes back where it was backed up: that place must still be free of other apps.
    apps.check_location(cfg.get("location", app.location), cfg.get("domain", app.domain), exclude_app=app.id)
    _check_ports(cfg.get("manifest") or app.manifest, cfg.get("portBindings"), app.id)
    previous = {"installationState": app.installation_state, "error": app.error}
    task_id = tasks.start("app", "backup.restore_app",
                          {"app_id": app.id, "backup_id": backup.id, "previous": previous},
                          app_id=app.id, locks=("backup",))
    App.update(installation_state="pending_restore", task_id=task_id, ts=utcnow()).where(
        App.id == app.id).execute()
    eventlog.record("app.restore", actor, appId=app.id, backupId=backup.id, taskId=str(task_id))
    return task_id


def start_clone(actor, app_id, body):
    source = apps.get_app(app_id)
    backup = _app_backup_of(source, body["backupId"])
    cfg = backup.app_config or app_config(source)
    domain = body["domain"]
    location = apps.check_location(body.get("location", ""), domain)
    manifest = cfg.get("manifest") or source.manifest
    bindings = apps.check_port_bindings(manifest, body.get("portBindings"))
    fields = config_fields({**cfg, "manifest": manifest})
    fields.update(location=location, domain=domain, port_bindings=bindings,
                  alternate_domains=[], redirect_domains=[])
    clone = App(id=str(uuid.uuid4()), app_store_id=cfg.get("appStoreId") or "",
                installation_state="pending_clone", run_state="running", **fields)
    try:
        clone.save(force_insert=True)
    except peewee.IntegrityError:
        raise Conflict(f"{domains.fqdn(location, domain)} is already in use") from None
    task_id = tasks.start("app", "backup.clone_app", {"app_id": clone.id, "backup_id": backup.id},
                          app_id=clone.id, locks=("backup",))
    App.update(task_id=task_id).where(App.id == clone.id).execute()
    eventlog.record("app.clone", actor, appId=clone.id, sourceAppId=source.id, backupId=backup.id,
                 taskId=str(task_id), fqdn=domains.fqdn(location, domain))
    return clone.id, task_id


# ---- whole-Cloudron restore ---------------------------------------------------------------------

def _major_minor(version):
    return tuple((str(version or "").split(".") + ["0", "0"])[:2])


def restore_status():
    """The `restore` object of GET /cloudron/status."""
    row = Setting.get_or_none(Setting.name == RESTORE_SETTING)
    task = Task.get_or_none(Task.id == (row.value or {}).get("taskId")) if row and row.value else None
    if task is None:
        return {"active": False, "message": "", "errorMessage": None}
    active = bool(task.pending or task.active)
    if not active and task.error and Setting.get_or_none(Setting.name == "activated") is not None \
            and not accounts.is_activated():
        # A restore task that died without cleaning up (killed, crashed) still holds the
        # activation lock of an instance that has no users: give the instance back.
        release_restore_lock()
    return {"active": active, "message": task.message or "",
            "errorMessage": (task.error or {}).get("message") if task.error else None}


def start_cloudron_restore(body, ip=None):
    """POST /cloudron/restore: only on a fresh, not activated instance. The storage is tested
    here (424 with its message); the download and restore run as a task."""
    if accounts.is_activated():
        raise Conflict("Cloudron is already activated")
    if _major_minor(body["version"]) != _major_minor(config.get().version):
        raise Conflict(f"Backup is of version {body['version']}; this Berth is {config.get().version} "
                       "(major.minor must match)")
    # The restore body needs only provider and format (+ where and the key): retention and
    # schedule come back with the restored platform settings.
    cfg = validate({"retentionSecs": DEFAULT_RETENTION, **body["backupConfig"]}, field_prefix="backupConfig.")
    storage = open_storage(cfg)
    storage.probe()
    backup_id = body["backupId"].strip("/")
    if not storage.exists(backup_id + formats.CHECKSUMS):
        raise BadRequest(f"no complete backup {backup_id} in this storage", "backupId")
    with database.atomic():
        # The 'activated' row is what activation inserts as its lock: holding it keeps a
        # concurrent activation (or second restore) out while this restore runs.
        if accounts.is_activated():
            raise Conflict("Cloudron is already activated")
        current = restore_status()
        if current["active"]:
            raise Conflict("Already setting up or restoring")
        _save_setting("activated", True)
        task_id = tasks.start("backup", "backup.restore_cloudron",
                              {"backup_config": cfg, "backup_id": backup_id})
        _save_setting(RESTORE_SETTING, {"taskId": task_id})
    eventlog.record("cloudron.restore", eventlog.Actor(ip=ip), backupId=backup_id, taskId=str(task_id))
    return task_id


def release_restore_lock():
    """A failed restore that changed nothing gives the instance back to activation/restore."""
    with database.atomic():
        if not accounts.is_activated():
            Setting.delete().where(Setting.name == "activated").execute()


# ---- retention ------------------------------------------------------------------------------------

def _age(backup, now):
    return (now - backup.creation_time).total_seconds()


def retention_plan(now=None):
    """(keep, remove) lists of backups under the retention policy:
    - `error` backups are removed (their partial data with them);
    - the newest `normal` box backup is always kept, and so is each app's newest `normal` backup;
    - box backups younger than retentionSecs are kept (retentionSecs < 0: all are);
    - an app backup a kept box backup depends on is kept; otherwise it goes once it is older
      than both retentionSecs and its own preserveSecs.
    `creating` backups (still being written) are never touched."""
    now = now or utcnow()
    retention = int(get_config().get("retentionSecs", DEFAULT_RETENTION))
    rows = list(Backup.select().order_by(Backup.creation_time.desc(), Backup.id.desc()))
    keep, remove = [], []
    kept_ids = set()
    newest_box = next((b for b in rows if b.type == "box" and b.state == "normal"), None)
    newest_app = {}
    for b in rows:
        if b.type == "app" and b.state == "normal" and b.app_id not in newest_app:
            newest_app[b.app_id] = b.id
    needed = set()
    for b in rows:
        if b.type != "box" or b.state != "normal":
            continue
        if b is newest_box or retention < 0 or _age(b, now) < max(retention, b.preserve_secs or 0):
            kept_ids.add(b.id)
            needed.update(b.depends_on or [])
    for b in rows:
        if b.state == "creating":
            continue
        if b.state == "error":
            remove.append(b)
        elif b.type == "box":
            (keep if b.id in kept_ids else remove).append(b)
        elif b.id in needed or b.id == newest_app.get(b.app_id) or retention < 0 \
                or _age(b, now) < max(retention, b.preserve_secs or 0):
            keep.append(b)
        else:
            remove.append(b)
    return keep, remove


# ---- download -----------------------------------------------------------------------------------

def download(backup_id):
    """(file name, byte iterator) of a tgz backup as stored (encrypted ones stay encrypted)."""
    backup = get_backup(backup_id)
    if backup.state != "normal":
        raise BadRequest(f"backup {backup_id} is {backup.state}, not complete", "backupId")
    if backup.format != "tgz":
        raise BadRequest(f"backup {backup_id} is an rsync backup (a folder of files), not one archive",
                         "backupId")
    stream = iter(formats.download_stream(backup.format, open_storage(), backup.remote_path))
    # The first read happens now, so a storage failure is a 424 answer, not a broken download.
    first = next(stream, b"")
    name = backup.id.replace("/", "_") + ".tar.gz" + (".enc" if backup.encrypted else "")
    return name, itertools.chain([first], stream)
