"""The usage history (models.usage): turning counter samples into stored rates, downsampling, and
reading series for /cloudron/graphs.

Retention, like Cloudron's Graphite storage schema: a day at one-minute resolution, a month at
one hour. The collector writes a row per scope per interval (step MINUTE); `roll_up` replaces the
rows older than a day, whole hours at a time, by one row per hour holding their averages (step
HOUR), and deletes hour rows older than a month. A query of the last day reads the minute rows,
averaged per minute; a longer one reads both kinds, averaged per hour, so the latest day (not
rolled up yet) is in it too.
"""
import collections
from collections.abc import Iterable

from models import database
from models.usage import HOUR, MINUTE, UsageSample

DAY = 86400
MONTH = 30 * DAY
MAX_GAP = 3600      # two samples further apart than this give no rate (the server was down)
COUNTED = ("disk_read", "disk_write", "net_rx", "net_tx")  # cumulative byte counters -> bytes/s
COLUMNS = ("cpu", "memory", "disk_read", "disk_write", "net_rx", "net_tx", "disk_used")


def sample_values(counters: dict, previous: dict | None) -> dict:
    """The row values of one sample: gauges as they are, rates from the counters of the previous
    sample of the same scope (None for the first sample, after a long gap, or when a counter went
    backwards: the container was recreated). `counters` has `at` (epoch seconds, float) and either
    cpu_busy/cpu_total (seconds, the machine) or cpu_ns/cpus (a container)."""
    values = {"memory": counters.get("memory"), "disk_used": counters.get("disk_used"), "cpu": None}
    values.update(dict.fromkeys(COUNTED))
    if not previous:
        return values
    elapsed = counters["at"] - previous.get("at", 0)
    if not 0 < elapsed <= MAX_GAP:
        return values
    for key in COUNTED:
        if key in counters and key in previous and counters[key] >= previous[key]:
            values[key] = (counters[key] - previous[key]) / elapsed
    if "cpu_total" in counters and "cpu_total" in previous:
        total = counters["cpu_total"] - previous["cpu_total"]
        busy = counters["cpu_busy"] - previous["cpu_busy"]
        if total > 0 and busy >= 0:
            values["cpu"] = min(100.0, 100.0 * busy / total)
    elif "cpu_ns" in counters and "cpu_ns" in previous and counters.get("cpus"):
        used = counters["cpu_ns"] - previous["cpu_ns"]
        if used >= 0:
            values["cpu"] = min(100.0, 100.0 * used / 1e9 / (elapsed * counters["cpus"]))
    return values


def record(scope: str, counters: dict) -> UsageSample:
    """Store one sample of `scope`, its rates computed against the latest stored sample."""
    latest = (UsageSample.select(UsageSample.counters)
              .where(UsageSample.scope == scope, UsageSample.step == MINUTE, UsageSample.counters.is_null(False))
              .order_by(UsageSample.time.desc()).first())
    values = sample_values(counters, latest.counters if latest else None)
    return UsageSample.create(scope=scope, step=MINUTE, time=int(counters["at"]), counters=counters, **values)


def _average(rows: Iterable, column: str) -> float | None:
    values = [getattr(row, column) for row in rows if getattr(row, column) is not None]
    return sum(values) / len(values) if values else None


def roll_up(now: float) -> int:
    """Replace minute rows older than a day (whole hours) by hourly averages; delete hour rows
    older than a month. Returns how many hour rows were made."""
    cutoff = int((now - DAY) // HOUR * HOUR)
    with database.atomic():
        old = list(UsageSample.select().where(UsageSample.step == MINUTE, UsageSample.time < cutoff))
        groups = collections.defaultdict(list)
        for row in old:
            groups[(row.scope, row.time // HOUR * HOUR)].append(row)
        made = [{"scope": scope, "step": HOUR, "time": hour, **{c: _average(rows, c) for c in COLUMNS}}
                for (scope, hour), rows in sorted(groups.items())]
        for start in range(0, len(made), 200):
            UsageSample.insert_many(made[start:start + 200]).execute()
        UsageSample.delete().where(UsageSample.step == MINUTE, UsageSample.time < cutoff).execute()
        UsageSample.delete().where(UsageSample.step == HOUR, UsageSample.time < now - MONTH).execute()
    return len(made)


def resolution(begin: int, now: float) -> int:
    """Minute points while the range lies within the last day, hourly points otherwise."""
    return MINUTE if begin >= now - DAY else HOUR


def _value(row, columns: tuple[str, ...]) -> float | None:
    values = [getattr(row, c) for c in columns]
    return None if any(v is None for v in values) else float(sum(values))


def datapoints(rows: Iterable, columns: tuple[str, ...], begin: int, end: int, step: int,
               fill: bool = True) -> list[list]:
    """Graphite's `[[value, timestamp], ...]`: one point per `step` from the step holding `begin`
    to the one holding `end`, the average of the rows in it; an empty step is null (left out
    when not `fill`: noNullPoints)."""
    buckets = collections.defaultdict(list)
    for row in rows:
        if begin // step * step <= row.time <= end:
            value = _value(row, columns)
            if value is not None:
                buckets[row.time // step * step].append(value)
    points = []
    for t in range(begin // step * step, end + 1, step):
        values = buckets.get(t)
        value = round(sum(values) / len(values), 2) if values else None
        if value is not None or fill:
            points.append([value, t])
    return points


def series(scope: str, columns: tuple[str, ...], begin: int, end: int, now: float, fill: bool = True) -> list[list]:
    """The datapoints of one scope's metric between `begin` and `end` (epoch seconds)."""
    step = resolution(begin, now)
    query = UsageSample.select().where(UsageSample.scope == scope, UsageSample.time >= begin // step * step,
                                       UsageSample.time <= end)
    if step == MINUTE:
        query = query.where(UsageSample.step == MINUTE)
    return datapoints(query, columns, begin, end, step, fill)
