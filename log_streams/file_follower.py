"""Log files: read their tail, and follow one still being written for every client of it.

`read_tail` reads the last lines of a file (or those after a given id) without reading more than
TAIL_CAP bytes. `follow_file` gives a line source (log_streams.sources) that replays history,
then delivers new lines; all clients of one file in this process share ONE `FileFollower` that
polls the file (a log_streams.shared_follower.SharedFollower), so 5,000 clients of a task log
cost one poll loop, not 5,000.
"""
import asyncio
import functools
import logging
import os
from collections.abc import Awaitable, Callable
from typing import BinaryIO

from log_streams.lines import LogLine, parse_lines, parse_timestamp
from log_streams.shared_follower import SharedFollower, Subscription
from log_streams.sources import StaticSource, io_pool

log = logging.getLogger("berth.logstream")

POLL_SECS = 0.025          # file poll period of a follower: bounds line delivery latency
FINISHED_CHECK_SECS = 0.5  # how often a follower asks whether its log has ended
TAIL_CAP = 8 * 1024 * 1024  # never read more than this much of a file to replay history
READ_CAP = 1024 * 1024     # most bytes a follower reads per poll, to keep the event loop responsive


def read_tail(path: str, source: str, lines: int | None = 10, after: int | None = None,
              end: int | None = None, partial: bool = True) -> list[LogLine]:
    """Lines of the file at `path` ending at byte `end` (default: its size): the last `lines`
    (None or negative = all) or, when `after` is given, every line whose id is greater.
    `partial=False` leaves out a last line without its newline (it is still being written)."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return []
    with f:
        size = os.fstat(f.fileno()).st_size
        end = size if end is None else min(end, size)
        want_all = after is None and (lines is None or lines < 0)
        if after is None and not want_all and lines == 0:
            return []

        def enough(chunks, newlines):
            if want_all:
                return False
            if after is None:
                return newlines > lines
            return _starts_at_or_before(b"".join(reversed(chunks[-2:])), after)
        data = tail_bytes(f, end, enough)
    if not partial and not data.endswith(b"\n"):
        data = data[:data.rfind(b"\n") + 1]
    parsed, _ = parse_lines(data.decode("utf-8", "replace").split("\n"), 0, source)
    if after is not None:
        return [line for line in parsed if line.id > after]
    return parsed if want_all else parsed[-lines:] if lines else []


def tail_bytes(f: BinaryIO, end: int, enough: Callable[[list[bytes], int], bool]) -> bytes:
    """Whole lines of the binary file `f` before byte `end`, read backwards in 64 KiB steps until
    enough(chunks read so far, newlines in them) says so, or TAIL_CAP bytes were read (the one
    backwards reader of log files: task logs here, platform logs in system_monitor)."""
    pos, chunks, newlines = end, [], 0
    while pos > 0 and end - pos < TAIL_CAP:
        step = min(65536, pos)
        pos -= step
        f.seek(pos)
        chunk = f.read(step)
        chunks.append(chunk)
        newlines += chunk.count(b"\n")
        if enough(chunks, newlines):
            break
    data = b"".join(reversed(chunks))
    if pos > 0:  # the window starts inside a line: drop that fragment
        data = data[data.find(b"\n") + 1:] if b"\n" in data else b""
    return data


def _starts_at_or_before(data, after):
    """Does the first whole line in `data` carry a timestamp <= after?"""
    start = data.find(b"\n") + 1
    if start == 0:
        return False
    head = data[start:start + 40].split(b" ", 1)[0].decode("ascii", "replace")
    ts = parse_timestamp(head)
    return ts is not None and ts <= after


class FileFollower(SharedFollower):
    """Follows one log file for every client of it in this process: one poll loop per file."""

    def __init__(self, path: str, source: str, finished: Callable[[], Awaitable[bool]]) -> None:
        super().__init__(path, _followers)
        self.path = path
        self.source = source
        self.finished = finished          # async () -> bool: has the log ended for good?
        self.offset = 0                   # bytes consumed: end of the last whole line read
        self.last_id = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.offset, self.last_id = await loop.run_in_executor(io_pool, _position, self.path, self.source)
        self.ready.set()
        self._task = asyncio.create_task(self._run())

    async def _run(self):
        loop = asyncio.get_running_loop()
        next_check = 0.0
        try:
            while self.subscribers:
                if not self._read() and self._heartbeat_due():
                    self._notify()
                if loop.time() >= next_check:
                    next_check = loop.time() + FINISHED_CHECK_SECS
                    if await self._has_finished():
                        self._read(final=True)
                        self._finish()
                        return
                await asyncio.sleep(POLL_SECS)
        finally:
            self._forget()

    async def _has_finished(self):
        try:
            return await self.finished()
        except Exception:
            log.exception("checking whether %s has ended failed", self.path)
            return False

    def _read(self, final=False):
        """Take in the lines written since the last read; True if there were any."""
        # Small reads of a local file straight from the loop: cheaper than a thread hop per poll.
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            return False
        if size < self.offset:  # truncated or replaced: start over
            self.offset = 0
        if size == self.offset:
            return False
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read(min(size - self.offset, READ_CAP))
        if not final:
            data = data[:data.rfind(b"\n") + 1]
            if not data:
                return False
        self.offset += len(data)
        lines, self.last_id = parse_lines(data.decode("utf-8", "replace").split("\n"), self.last_id,
                                          self.source)
        self._append(lines)
        if final and self.offset < size:
            self._read(final=True)
        return bool(lines)


def _position(path, source):
    """(end of the last whole line, id of that line) of the file now."""
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        return 0, 0
    with open(path, "rb") as f:
        f.seek(max(0, size - 65536))
        tail = f.read()
    end = size - (len(tail) - (tail.rfind(b"\n") + 1))
    last = read_tail(path, source, lines=1, end=end)
    return end, last[-1].id if last else 0


_followers = {}


async def follow_file(path: str, source: str, finished: Callable[[], Awaitable[bool]], lines: int | None = 10,
                      after: int | None = None) -> StaticSource | Subscription:
    """A line source for a log file still being written: the last `lines` lines (or those after
    id `after`), then every new line, until `await finished()` says the log has ended."""
    loop = asyncio.get_running_loop()
    if await finished():
        return StaticSource(await loop.run_in_executor(
            io_pool, functools.partial(read_tail, path, source, lines, after)))
    follower = _followers.get(path)
    if follower is None or follower.ended:
        follower = _followers[path] = FileFollower(path, source, finished)
        sub = follower.subscribe(0)  # before start(): the poll loop runs while it has subscribers
        try:
            await follower.start()
        except BaseException:
            follower._forget()
            follower.ready.set()  # clients waiting for it find it unstarted and give up
            raise
    else:
        await follower.ready.wait()
        if follower._task is None:
            raise RuntimeError(f"could not follow {path}")
        sub = follower.subscribe()
    # The snapshot (offset, cursor) is taken without an await in between, so history up to
    # `offset` and the follower's lines from `cursor` on meet exactly: no gap, no duplicate.
    sub.cursor, offset = follower.end, follower.offset
    sub.replay = await loop.run_in_executor(
        io_pool, functools.partial(read_tail, path, source, lines, after, offset, False))
    return sub
