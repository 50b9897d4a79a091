"""The query of GET /cloudron/graphs, in the style of Graphite's render API that Cloudron proxies.

- `target` (repeatable): `[<scope>.]<metric>`, scope `system` (the default) or `app.<appId>`;
  metrics `cpu` (percent of all CPUs of the machine), `memory` (bytes in use), `disk` (bytes read
  and written per second; `disk.read`, `disk.write` apart), `disk.used` (system: bytes used on
  the data dir's filesystem), `network` (bytes received and sent per second; `network.rx`,
  `network.tx`). Cloudron's Graphite names (collectd paths) are not accepted: Berth keeps no
  collectd tree, and a made-up name would only ever answer nothing.
- `from` / `until`: `now`, a relative time `-<n><unit>` (s, min, h, d, w, mon = 30 d, y = 365 d,
  long forms like `-24hours` too), seconds since the epoch, or an ISO-8601 time. Defaults:
  `-24h` and `now`.
Anything else is a BadRequest naming the parameter, before the database is read.
"""
import dataclasses
import datetime
import re

from core.errors import BadRequest

MAX_TARGETS = 20
SYSTEM = "system"

# metric name -> the columns summed for it (models.usage.UsageSample)
METRICS = {
    "cpu": ("cpu",),
    "memory": ("memory",),
    "disk": ("disk_read", "disk_write"),
    "disk.read": ("disk_read",),
    "disk.write": ("disk_write",),
    "disk.used": ("disk_used",),
    "network": ("net_rx", "net_tx"),
    "network.rx": ("net_rx",),
    "network.tx": ("net_tx",),
}
SYSTEM_ONLY = {"disk.used"}

_APP_ID = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}$")
_RELATIVE = re.compile(r"^-(\d{1,9})([a-z]+)$")
_UNITS = {
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "week": 604800, "weeks": 604800,
    "mon": 2592000, "month": 2592000, "months": 2592000,
    "y": 31536000, "year": 31536000, "years": 31536000,
}


@dataclasses.dataclass(frozen=True)
class Target:
    name: str               # as the client wrote it: echoed in the answer
    scope: str              # "system" or an app id
    columns: tuple[str, ...]


def parse_target(text: str) -> Target:
    raw = (text or "").strip()
    if raw.startswith("system."):
        scope, metric = SYSTEM, raw[len("system."):]
    elif raw.startswith("app."):
        scope, _, metric = raw[len("app."):].partition(".")
        if not _APP_ID.fullmatch(scope):
            raise BadRequest(f"{text!r}: not an app id after 'app.'", field="target")
    else:
        scope, metric = SYSTEM, raw
    if metric not in METRICS:
        raise BadRequest(f"{text!r}: the metric must be one of {', '.join(METRICS)} (after 'system.' or "
                         "'app.<appId>.')", field="target")
    if metric in SYSTEM_ONLY and scope != SYSTEM:
        raise BadRequest(f"{text!r}: {metric} is measured for the system only", field="target")
    return Target(raw, scope, METRICS[metric])


def parse_targets(texts: list[str] | str | None) -> list[Target]:
    if isinstance(texts, str):
        texts = [texts]
    if not texts:
        raise BadRequest("at least one target is required, e.g. target=cpu or target=app.<appId>.memory",
                         field="target")
    if len(texts) > MAX_TARGETS:
        raise BadRequest(f"at most {MAX_TARGETS} targets per request", field="target")
    return [parse_target(text) for text in texts]


def parse_time(text: str | None, now: float, field: str, default: str) -> int:
    """Epoch seconds of a `from`/`until` value (see the module docstring)."""
    raw = (default if text is None or not str(text).strip() else str(text)).strip().lower()
    if raw == "now":
        return int(now)
    m = _RELATIVE.match(raw)
    if m:
        unit = _UNITS.get(m.group(2))
        if unit is None:
            raise BadRequest(f"{text!r}: unknown unit {m.group(2)!r} (s, min, h, d, w, mon, y)", field=field)
        return int(now) - int(m.group(1)) * unit
    if raw.isdigit() and len(raw) <= 12:
        return int(raw)
    try:
        value = datetime.datetime.fromisoformat(raw.upper() if "t" in raw else raw)
    except ValueError:
        raise BadRequest(f"{text!r}: use now, -<n><unit> (e.g. -24h), epoch seconds or an ISO-8601 time",
                         field=field) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return int(value.timestamp())


def parse_range(start: str | None, until: str | None, now: float) -> tuple[int, int]:
    """(from, until) in epoch seconds; from must come before until."""
    begin = parse_time(start, now, "from", "-24h")
    end = parse_time(until, now, "until", "now")
    if begin >= end:
        raise BadRequest("must be earlier than until", field="from")
    return begin, end
