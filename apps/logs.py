"""An app's log: its container's output, as log lines for download and for log streams."""
import asyncio

import containers
import log_streams
from core.errors import PreconditionFailed


def check_available(app_id: str) -> None:
    """Logs come from the container: none yet (e.g. its image never arrived) is a 412."""
    if containers.inspect(app_id) is None:
        raise PreconditionFailed("The app has no container yet, so it has no log")


def tail(app_id: str, lines: int | None = 10) -> list[log_streams.LogLine]:
    count = 100000 if lines is None or lines < 0 else lines
    return log_streams.strictly_increasing([log_streams.stamped_line(app_id, ts, text)
                                            for ts, text in containers.logs(app_id, count)])


def download(app_id: str, lines: int | None = 10, fmt: str = "json") -> str:
    rows = tail(app_id, lines)
    if fmt == "json":
        return "".join(row.json() + "\n" for row in rows)
    return "".join(row.raw + "\n" for row in rows)


async def follow(app_id: str, lines: int | None = 10, after: int | None = None) -> log_streams.IterSource:
    """A logstream line source: the last `lines` lines (or those after `after`), then new ones."""
    await asyncio.to_thread(check_available, app_id)
    return await log_streams.replay_then_follow(app_id, lambda count: tail(app_id, count),
                                                lambda: containers.follow_logs_async(app_id, lines=0), lines, after)
