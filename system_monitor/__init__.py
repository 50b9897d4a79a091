"""What the machine is doing: disks, memory, resource graphs collected on a schedule, Berth's own logs.

    machine.py        /cloudron/disks and /cloudron/memory from the kernel (psutil)
    collector.py      the schedule sampling the machine and each app's container
    history.py        samples -> stored rates, downsampling (a day per minute, a month per hour), series
    graph_query.py    `target`, `from`, `until` of /cloudron/graphs
    box_log.py        Berth's log files (box.log, crash.log) and their rotation
    platform_logs.py  the log units (box, crash, nginx) read without following symlinks
"""
import asyncio
import time

import log_streams
from system_monitor import box_log, collector, graph_query, history, machine, platform_logs

install_log_files = box_log.install
register = collector.register
disks = machine.disks
memory = machine.memory


def graphs(targets: list[str] | str | None, start: str | None = None, until: str | None = None,
           no_null_points: bool = False) -> list[dict]:
    """Graphite's answer: [{target, datapoints: [[value, timestamp], ...]}] per target."""
    now = time.time()
    parsed = graph_query.parse_targets(targets)
    begin, end = graph_query.parse_range(start, until, now)
    return [{"target": t.name, "datapoints": history.series(t.scope, t.columns, begin, end, now, not no_null_points)}
            for t in parsed]


def download_logs(unit: str, lines: int = 10, fmt: str = "json") -> str:
    return platform_logs.render(platform_logs.unit_log(unit).tail(lines), fmt)


async def follow_logs(unit: str, lines: int = 10, after: int | None = None) -> log_streams.LineSource:
    """A log stream's line source: the last `lines` lines (or those after id `after`), then new ones."""
    source = await asyncio.to_thread(platform_logs.unit_log, unit)
    return await source.follow(lines, after)
