"""Line sources: what a log stream reads its lines from.

A line source has `await next_batch(timeout)` -> list of LogLine, `[]` when idle for `timeout`
seconds (time for a heartbeat), None when the log has ended; and `close()`. Sources here:
`StaticSource` (a finished log), `IterSource` (any async iterator of lines, e.g. `docker logs
-f`); `file_follower.follow_file` gives one for a log file still being written.
"""
import asyncio
import collections
import concurrent.futures
import datetime
import functools
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, Protocol

from log_streams.lines import LogLine, parse_lines, stamped_line

log = logging.getLogger("berth.logstream")

# A client idle this long gets a heartbeat: well under common proxy idle timeouts (60 s).
# Followers wake their idle clients at least this often.
HEARTBEAT_SECS = 15.0

# Replay reads, "has the log ended" checks and short database lookups block; they run here,
# off the event loop.
io_pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="logstream")


def run_blocking(fn: Callable[..., Any], *args: object) -> asyncio.Future:
    """Run a short blocking call (a database lookup) off the event loop; returns a future."""
    return asyncio.get_running_loop().run_in_executor(io_pool, functools.partial(fn, *args))


class LineSource(Protocol):
    """What a log stream reads lines from (see the module docstring)."""

    async def next_batch(self, timeout: float) -> list[LogLine] | None: ...

    def close(self) -> None: ...


class StaticSource:
    """A fixed list of lines, then the end (a finished log)."""

    def __init__(self, lines: list[LogLine]) -> None:
        self._lines = lines

    async def next_batch(self, timeout: float) -> list[LogLine] | None:
        lines, self._lines = self._lines, None
        return lines or None

    def close(self) -> None:
        pass


class IterSource:
    """Adapts an async iterator of lines (LogLine, or stored text lines) to a line source.
    Ids are made strictly increasing (a line sharing its predecessor's timestamp gets +1 us),
    since a resuming client skips every id up to the last one it saw."""

    def __init__(self, lines: AsyncIterator[LogLine | str], source: str = "", replay: Iterable[LogLine] = ()) -> None:
        self._source = source
        self._buffer = collections.deque(replay)
        self._last_id = self._buffer[-1].id if self._buffer else 0
        self._event = asyncio.Event()
        self._done = False
        self._task = asyncio.create_task(self._pump(lines))

    async def _pump(self, lines):
        try:
            async for item in lines:
                if isinstance(item, LogLine):
                    if item.id <= self._last_id:
                        item.id = self._last_id + 1
                    self._last_id = item.id
                    self._buffer.append(item)
                else:
                    parsed, self._last_id = parse_lines(item.split("\n"), self._last_id, self._source)
                    self._buffer.extend(parsed)
                self._event.set()
        except Exception:
            log.exception("log source failed")
        finally:
            self._done = True
            self._event.set()

    async def next_batch(self, timeout: float) -> list[LogLine] | None:
        if not self._buffer and not self._done and timeout > 0:
            self._event.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._event.wait()
            except TimeoutError:
                pass
        if self._buffer:
            batch = list(self._buffer)
            self._buffer.clear()
            return batch
        return None if self._done else []

    def close(self) -> None:
        self._task.cancel()


async def replay_then_follow(source: str, tail: Callable[[int | None], list[LogLine]],
                             follow: Callable[[], AsyncIterator[tuple[datetime.datetime | None, str]]],
                             lines: int | None, after: int | None) -> IterSource:
    """A stamped log (a container's output) as a line source: the last `lines` lines, or all
    those after id `after` when a client resumes, read by tail(count) off the event loop (-1:
    all), then the (stamp, text) pairs follow() yields, stamped_line'd, that come after them."""
    replay = await asyncio.to_thread(tail, -1 if after is not None else lines)
    if after is not None:
        replay = [line for line in replay if line.id > after]
    since = replay[-1].id if replay else after or 0

    async def new_lines() -> AsyncIterator[LogLine]:
        async for when, text in follow():
            line = stamped_line(source, when, text)
            if line.id > since:
                yield line
    return IterSource(new_lines(), source, replay)
