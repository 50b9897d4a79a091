"""Backups: the storage configuration, what a backup is, retention, and the requests that become
backup, cleanup, restore and clone tasks.

    settings.py         the backup config (`backup_config` setting) and the schedules it implies
    records.py          ids, rows, stored metadata, stale and missing backups
    requests.py         starting work: full/app backup, cleanup, app restore, clone, whole restore
    retention.py        which backups cleanup keeps (a pure rule)
    download.py         GET /backups/{id}/download
    scheduled.py        what the schedules run: automatic backup, cleanup, the minutely sweep
    stages.py           one backup through snapshot -> upload -> verify, and one read back
    scratch.py          local scratch folders of backup tasks and their leftovers
    snapshot_secrets.py what the platform snapshot leaves out, and how a restore makes up for it
    database_snapshots.py  consistent copies of the platform database, and putting one back
    box_restore.py      the whole-Cloudron restore, step by step
    task_bodies.py      the task bodies (tasks.registry `backup.*`)
    formats/            how a folder becomes a backup on a storage, and comes back

The storage itself is backup_storage. Callers outside the package use the names below.
"""
from backups.box_restore import status as restore_status
from backups.download import download
from backups.records import get_backup, list_app_backups, list_box_backups
from backups.requests import (
    start_app_backup,
    start_app_restore,
    start_cleanup,
    start_clone,
    start_cloudron_restore,
    start_full_backup,
)
from backups.scheduled import scheduled_backup, scheduled_cleanup, sweep
from backups.settings import get_config, masked_config, register, set_config

__all__ = [
    "download", "get_backup", "get_config", "list_app_backups", "list_box_backups", "masked_config",
    "register", "restore_status", "scheduled_backup", "scheduled_cleanup", "set_config", "start_app_backup",
    "start_app_restore", "start_cleanup", "start_clone", "start_cloudron_restore", "start_full_backup", "sweep",
]
