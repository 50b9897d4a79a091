"""Platform settings under /settings/<name>: stored in the settings table, validated on write.

The update patterns are schedules (tasks.schedules), so a change takes effect at once in every
process: `app_autoupdate_pattern` drives apps.updates.check_all; `box_autoupdate_pattern` drives
platform_update.updater.scheduled_update (check the release feed, back up, stage the release).
"""
import unicodedata
import zoneinfo
from typing import Any

import eventlog
from core.errors import BadRequest
from models import Setting
from tasks import schedules

DEFAULTS = {
    "cloudron_name": "Berth",
    "time_zone": "UTC",
    "unstable_apps": False,
    "dynamic_dns": False,
    "language": "en",
}
APP_UPDATE_SCHEDULE = ("app-autoupdate", "00 00 1,3,5,23 * * *", "apps.autoupdate")
BOX_UPDATE_SCHEDULE = ("box-autoupdate", "never", "box.autoupdate")


def register() -> None:
    schedules.ensure(*APP_UPDATE_SCHEDULE)
    schedules.ensure(*BOX_UPDATE_SCHEDULE)


def get(name: str) -> Any:
    """The stored value, or the default (a stored null counts as not set)."""
    value = Setting.read(name)
    return DEFAULTS.get(name) if value is None else value


def put(actor: eventlog.Actor, name: str, value: object) -> None:
    Setting.put(name, value)
    eventlog.record("cloudron.settings", actor, setting=name, value=value)


def set_time_zone(actor: eventlog.Actor, tz: str) -> None:
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise BadRequest(f"'{tz}' is not a time zone of the tz database (e.g. Europe/Berlin)", "timeZone") from None
    put(actor, "time_zone", tz)
    schedules.changed()  # schedules fire in the Cloudron's time zone


def set_cloudron_name(actor: eventlog.Actor, name: str) -> None:
    """/settings/cloudron_name and /branding/cloudron_name. The name goes into page titles, mail
    subjects and headers: no control characters or line breaks."""
    name = name.strip()
    if not 1 <= len(name) <= 64:
        raise BadRequest("must be 1 to 64 characters", "name")
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in name):
        raise BadRequest("must not contain control characters or line breaks", "name")
    put(actor, "cloudron_name", name)


def _schedule(which):
    return APP_UPDATE_SCHEDULE if which == "app" else BOX_UPDATE_SCHEDULE


def get_update_pattern(which: str) -> str:
    name, default, _ = _schedule(which)
    row = schedules.get(name)
    return row.pattern if row is not None else default


def set_update_pattern(actor: eventlog.Actor, which: str, pattern: str) -> None:
    name, _, action = _schedule(which)
    schedules.save(name, pattern, action)  # validates: 400 naming `pattern`
    eventlog.record("cloudron.settings", actor, setting=f"{which}_autoupdate_pattern", value=pattern)
