"""The backup configuration (where, how, how often, how long) and the schedules that follow from it.

The config is one `setting` row (`backup_config`) holding the secrets in clear; GET answers it
masked. A fresh instance has the default: a folder under the data dir, tgz, daily, 7 days kept.
"""
import backup_storage
import eventlog
from core import data_paths
from core.errors import BadRequest
from models.settings import Setting
from tasks import schedules

SETTING = "backup_config"
DAY = 86400
DEFAULT_RETENTION = backup_storage.DEFAULT_RETENTION_SECS
DAILY_PATTERN = "00 00 23 * * *"
CLEANUP_PATTERN = "00 30 */6 * * *"      # every six hours
SWEEP_PATTERN = "00 * * * * *"           # every minute
BACKUP_SCHEDULE = "backup"
CLEANUP_SCHEDULE = "backup-cleanup"
SWEEP_SCHEDULE = "backup-sweep"
# What a whole-Cloudron restore takes from the restored settings rather than from the request
# (the request says where the backups are; how often and how long is the platform's policy).
# Keep in sync with backups/box_restore.py (carry_over) and backups/snapshot_secrets.py (what the
# platform snapshot leaves out of this setting).
POLICY_FIELDS = ("retentionSecs", "intervalSecs", "schedulePattern", "syncConcurrency")


def default_config() -> dict:
    return backup_storage.default_config(data_paths.root())


def get_config() -> dict:
    """The stored config (secrets in clear), or the default of a fresh instance."""
    value = Setting.read(SETTING)
    return dict(value) if value else default_config()


def masked_config() -> dict:
    return backup_storage.masked(get_config())


def validate(body: dict, stored: dict | None = None, field_prefix: str = "") -> dict:
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


def open_storage(cfg: dict | None = None) -> backup_storage.Storage:
    return backup_storage.open_storage(cfg or get_config())


def set_config(actor: eventlog.Actor, body: dict) -> dict:
    """Validate, test the storage (write, read back, delete a probe; its own error -> 424), save,
    and move the backup schedule to the new pattern."""
    cfg = validate(body, get_config())
    open_storage(cfg).probe()
    Setting.put(SETTING, cfg)
    apply_schedule(cfg)
    eventlog.record("backup.config", actor, provider=cfg.get("provider"), format=cfg.get("format"),
                    retentionSecs=cfg.get("retentionSecs"), encrypted=bool(cfg.get("key")))
    return cfg


# ---- schedules ----------------------------------------------------------------------------------

def schedule_pattern(cfg: dict) -> str:
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


def register() -> None:
    """At server start: the automatic backup (from the stored config), the six-hourly cleanup and
    the minutely sweep (backups.scheduled: the writes that GET requests must not do)."""
    schedules.ensure(BACKUP_SCHEDULE, schedule_pattern(get_config()), "backup.scheduled")
    schedules.ensure(CLEANUP_SCHEDULE, CLEANUP_PATTERN, "backup.scheduled_cleanup")
    schedules.ensure(SWEEP_SCHEDULE, SWEEP_PATTERN, "backup.sweep")


def apply_schedule(cfg: dict) -> None:
    schedules.save(BACKUP_SCHEDULE, schedule_pattern(cfg), "backup.scheduled")
