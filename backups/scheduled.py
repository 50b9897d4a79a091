"""What the backup schedules run (tasks.registry actions `backup.scheduled`,
`backup.scheduled_cleanup`, `backup.sweep`; registered by settings.register). They run in the
server process and are quick: they start a task, or fix a few rows.
"""
import logging

import eventlog
from backups import box_restore, records, requests, settings
from core.errors import Conflict
from models import utcnow

log = logging.getLogger("berth.backups")


def scheduled_backup(fire_time: float | None = None) -> int | None:
    cfg = settings.get_config()
    if cfg.get("provider") == "noop":
        return None
    if requests.full_backup_queued() is not None:
        log.info("scheduled backup skipped: a backup is already queued or running")
        return None
    if not cfg.get("schedulePattern"):
        # Cloudron's rule: an interval schedule skips a run when the newest backup is less than
        # an hour short of the interval old (a manual backup just made counts).
        newest = records.newest_box()
        interval = int(cfg.get("intervalSecs") or settings.DAY)
        if newest is not None and (utcnow() - newest.creation_time).total_seconds() < interval - 3600:
            log.info("scheduled backup skipped: %s is recent enough", newest.id)
            return None
    try:
        return requests.start_full_backup(eventlog.SYSTEM, scheduled=True)
    except Conflict as e:   # started by hand meanwhile
        log.info("scheduled backup skipped: %s", e.message)
        return None


def scheduled_cleanup(fire_time: float | None = None) -> int | None:
    try:
        return requests.start_cleanup(eventlog.SYSTEM)
    except Conflict as e:
        log.info("scheduled cleanup skipped: %s", e.message)
        return None


def sweep(fire_time: float | None = None) -> None:
    """The writes that reads must not do (GET /backups, GET /cloudron/status): backups whose task
    died become `error`, and a killed whole-Cloudron restore gives the activation lock back."""
    records.mark_stale()
    if box_restore.release_abandoned_lock():
        log.info("released the activation lock of a whole-Cloudron restore that ended without doing so")
