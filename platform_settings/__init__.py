"""Platform settings under /settings/<name>: stored in the settings table, validated on write.

The update patterns are schedules (tasks.schedules), so a change takes effect at once in every
process: `app_autoupdate_pattern` drives app_updates.check_all; `box_autoupdate_pattern` is kept
for clients but fires nothing, as Berth updates itself through its package, not in place.
"""
import zoneinfo

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


def register():
    schedules.ensure(*APP_UPDATE_SCHEDULE)
    schedules.ensure(*BOX_UPDATE_SCHEDULE)


def get(name):
    row = Setting.get_or_none(Setting.name == name)
    return row.value if row is not None and row.value is not None else DEFAULTS.get(name)


def put(actor, name, value):
    Setting.insert(name=name, value=value).on_conflict(
        conflict_target=[Setting.name], update={Setting.value: value}).execute()
    eventlog.record("cloudron.settings", actor, setting=name, value=value)


def set_time_zone(actor, tz):
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise BadRequest(f"'{tz}' is not a time zone of the tz database (e.g. Europe/Berlin)", "timeZone") from None
    put(actor, "time_zone", tz)
    schedules.changed()  # schedules fire in the Cloudron's time zone


def set_cloudron_name(actor, name):
    name = name.strip()
    if not 1 <= len(name) <= 64:
        raise BadRequest("must be 1 to 64 characters", "name")
    put(actor, "cloudron_name", name)


def _schedule(which):
    return APP_UPDATE_SCHEDULE if which == "app" else BOX_UPDATE_SCHEDULE


def get_update_pattern(which):
    name, default, _ = _schedule(which)
    row = schedules.get(name)
    return row.pattern if row is not None else default


def set_update_pattern(actor, which, pattern):
    name, _, action = _schedule(which)
    schedules.save(name, pattern, action)  # validates: 400 naming `pattern`
    eventlog.record("cloudron.settings", actor, setting=f"{which}_autoupdate_pattern", value=pattern)
