"""An app's log: its container's output, as log lines for download and for log streams."""
import asyncio

import containers
import log_streams
from core.errors import PreconditionFailed


def _line(app_id, ts, text):
    us = int(ts.timestamp() * 1_000_000) if ts is not None else log_streams.now_us()
    return log_streams.LogLine(us, text, f"{log_streams.format_timestamp(us)} {text}", app_id)


def _unique(lines):
    """Make ids strictly increasing (two lines may share a timestamp)."""
    last = 0
    for line in lines:
        if line.id <= last:
            line.id = last + 1
        last = line.id
    return lines


def check_available(app_id: str) -> None:
    """Logs come from the container: none yet (e.g. its image never arrived) is a 412."""
    if containers.inspect(app_id) is None:
        raise PreconditionFailed("The app has no container yet, so it has no log")


def tail(app_id: str, lines: int | None = 10) -> list[log_streams.LogLine]:
    count = 100000 if lines is None or lines < 0 else lines
    return _unique([_line(app_id, ts, text) for ts, text in containers.logs(app_id, count)])


def download(app_id: str, lines: int | None = 10, fmt: str = "json") -> str:
    rows = tail(app_id, lines)
    if fmt == "json":
        return "".join(row.json() + "\n" for row in rows)
    return "".join(row.raw + "\n" for row in rows)


async def follow(app_id: str, lines: int | None = 10, after: int | None = None) -> log_streams.IterSource:
    """A logstream line source: the last `lines` lines (or those after `after`), then new ones."""
    await asyncio.to_thread(check_available, app_id)
    replay = await asyncio.to_thread(tail, app_id, -1 if after is not None else lines)
    if after is not None:
        replay = [line for line in replay if line.id > after]
    since = replay[-1].id if replay else after or 0

    async def new_lines():
        async for ts, text in containers.follow_logs_async(app_id, lines=0):
            line = _line(app_id, ts, text)
            if line.id > since:
                yield line
    return log_streams.IterSource(new_lines(), source=app_id, replay=replay)
