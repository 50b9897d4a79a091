"""Which backups retention keeps and which it removes: a pure rule over rows and a clock.

`plan` reads no database, config or clock, so it is tested on plain objects
(tests/unit/backups/test_retention.py); `current_plan` applies it to the stored rows.
"""
import datetime
from collections.abc import Iterable, Sequence
from typing import Protocol

from backups import settings
from models import utcnow
from models.backups import Backup


class BackupLike(Protocol):
    id: str
    type: str
    app_id: str | None
    state: str
    creation_time: datetime.datetime
    preserve_secs: int | None
    depends_on: Sequence[str] | None


def _age(backup: BackupLike, now: datetime.datetime) -> float:
    return (now - backup.creation_time).total_seconds()


def _young(backup: BackupLike, now: datetime.datetime, retention: int) -> bool:
    return _age(backup, now) < max(retention, backup.preserve_secs or 0)


def plan(rows: Iterable[BackupLike], retention: int,
         now: datetime.datetime) -> tuple[list[BackupLike], list[BackupLike]]:
    """(keep, remove) lists of backups under the retention policy:
    - `error` backups are removed (their partial data with them);
    - the newest `normal` box backup is always kept, and so is each app's newest `normal` backup;
    - box backups younger than `retention` seconds are kept (retention < 0: all are);
    - an app backup a kept box backup depends on is kept; otherwise it goes once it is older
      than both `retention` and its own preserveSecs.
    `creating` backups (still being written) are never touched. Both lists are newest first."""
    rows = sorted(rows, key=lambda b: (b.creation_time, b.id), reverse=True)
    newest_box = next((b for b in rows if b.type == "box" and b.state == "normal"), None)
    newest_app = {}
    for b in rows:
        if b.type == "app" and b.state == "normal" and b.app_id not in newest_app:
            newest_app[b.app_id] = b.id
    kept_boxes, needed = set(), set()
    for b in rows:
        if b.type != "box" or b.state != "normal":
            continue
        if b is newest_box or retention < 0 or _young(b, now, retention):
            kept_boxes.add(b.id)
            needed.update(b.depends_on or [])
    keep, remove = [], []
    for b in rows:
        if b.state == "creating":
            continue
        if b.state == "error":
            remove.append(b)
        elif b.type == "box":
            (keep if b.id in kept_boxes else remove).append(b)
        elif b.id in needed or b.id == newest_app.get(b.app_id) or retention < 0 or _young(b, now, retention):
            keep.append(b)
        else:
            remove.append(b)
    return keep, remove


def current_plan(now: datetime.datetime | None = None) -> tuple[list, list]:
    """`plan` over every stored backup row with the configured retentionSecs."""
    retention = int(settings.get_config().get("retentionSecs", settings.DEFAULT_RETENTION))
    return plan(Backup.select(), retention, now or utcnow())
