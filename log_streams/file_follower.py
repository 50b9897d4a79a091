"""Log files: read their tail, and follow one still being written for every client of it.

`read_tail` reads the last lines of a file (or those after a given id) without reading more than
TAIL_CAP bytes. `follow_file` gives a line source (log_streams.sources) that replays history,
then delivers new lines; all clients of one file in this process share ONE `FileFollower` that
polls the file, so 1,000 clients of a task log cost one poll loop, not 1,000.
"""
import asyncio
import functools
import logging
import os
from collections.abc import Awaitable, Callable

from log_streams.lines import LogLine, parse_lines, parse_timestamp
from log_streams.sources import HEARTBEAT_SECS, StaticSource, io_pool

log = logging.getLogger("berth.logstream")

POLL_SECS = 0.025          # file poll period of a follower: bounds line delivery latency
FINISHED_CHECK_SECS = 0.5  # how often a follower asks whether its log has ended
TAIL_CAP = 8 * 1024 * 1024  # never read more than this much of a file to replay history
READ_CAP = 1024 * 1024     # most bytes a follower reads per poll, to keep the event loop responsive
TRIM_AT = 4096             # buffered lines before a follower drops what every client has seen
LAG_LIMIT = 65536          # a client this far behind is ended; it resumes with Last-Event-ID
WAKE_CHUNK = 50            # clients woken per event-loop turn when a line arrives


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
        pos, chunks, newlines = end, [], 0
        while pos > 0 and end - pos < TAIL_CAP:
            step = min(65536, pos)
            pos -= step
            f.seek(pos)
            chunk = f.read(step)
            chunks.append(chunk)
            newlines += chunk.count(b"\n")
            if want_all:
                continue
            if after is None and newlines > lines:
                break
            if after is not None and _starts_at_or_before(b"".join(reversed(chunks[-2:])), after):
                break
        data = b"".join(reversed(chunks))
    if pos > 0:  # the window starts inside a line: drop that fragment
        data = data[data.find(b"\n") + 1:] if b"\n" in data else b""
    if not partial and not data.endswith(b"\n"):
        data = data[:data.rfind(b"\n") + 1]
    parsed, _ = parse_lines(data.decode("utf-8", "replace").split("\n"), 0, source)
    if after is not None:
        return [line for line in parsed if line.id > after]
    return parsed if want_all else parsed[-lines:] if lines else []


def _starts_at_or_before(data, after):
    """Does the first whole line in `data` carry a timestamp <= after?"""
    start = data.find(b"\n") + 1
    if start == 0:
        return False
    head = data[start:start + 40].split(b" ", 1)[0].decode("ascii", "replace")
    ts = parse_timestamp(head)
    return ts is not None and ts <= after


class FileFollower:
    """Follows one log file for every client of it in this process: one poll loop per file."""

    def __init__(self, path: str, source: str, finished: Callable[[], Awaitable[bool]]) -> None:
        self.path = path
        self.source = source
        self.finished = finished          # async () -> bool: has the log ended for good?
        self.lines = []                   # lines read since start, from absolute index `base`
        self.base = 0
        self.offset = 0                   # bytes consumed: end of the last whole line read
        self.last_id = 0
        self.ended = False
        self.subscribers = set()
        self.ready = asyncio.Event()
        self._waiters = []                # futures of clients waiting for the next line
        self._notified = asyncio.get_running_loop().time()
        self._task = None

    @property
    def end(self) -> int:
        return self.base + len(self.lines)

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
                # No new line for a while still wakes the clients: they send a heartbeat.
                wake = self._read() or loop.time() - self._notified >= HEARTBEAT_SECS
                if loop.time() >= next_check:
                    next_check = loop.time() + FINISHED_CHECK_SECS
                    if await self._has_finished():
                        self._read(final=True)
                        self.ended = True
                        await self._wake_clients()
                        return
                if wake:
                    await self._wake_clients()
                await asyncio.sleep(POLL_SECS)
        finally:
            if _followers.get(self.path) is self:
                del _followers[self.path]

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
        self.lines.extend(lines)
        self._trim()
        if final and self.offset < size:
            self._read(final=True)
        return bool(lines)

    async def _wake_clients(self):
        """Wake the waiting clients, WAKE_CHUNK per event-loop turn: a line for 1,000 clients
        is 1,000 task wake-ups (each writes to its socket), and in between other requests get
        their turn instead of queueing behind the whole fan-out."""
        self._notified = asyncio.get_running_loop().time()
        waiters, self._waiters = self._waiters, []
        for start in range(0, len(waiters), WAKE_CHUNK):
            if start:
                await asyncio.sleep(0)
            for future in waiters[start:start + WAKE_CHUNK]:
                if not future.done():  # done = cancelled: that client has gone
                    future.set_result(None)

    def wait(self) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        return future

    def _trim(self):
        if len(self.lines) < TRIM_AT:
            return
        keep_from = min((s.cursor for s in self.subscribers), default=self.end)
        keep_from = max(keep_from, self.end - LAG_LIMIT)  # laggards beyond this are ended
        if keep_from > self.base:
            del self.lines[:keep_from - self.base]
            self.base = keep_from

    def subscribe(self, sub: "FollowSource") -> None:
        self.subscribers.add(sub)

    def unsubscribe(self, sub: "FollowSource") -> None:
        self.subscribers.discard(sub)
        if not self.subscribers and self._task is not None:
            self._task.cancel()


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


class FollowSource:
    """One client's view of a FileFollower: history first, then the shared new lines."""

    def __init__(self, follower: FileFollower, cursor: int) -> None:
        self.follower = follower
        self.cursor = cursor
        self.replay = None

    async def next_batch(self, timeout: float) -> list[LogLine] | None:
        if self.replay:
            batch, self.replay = self.replay, None
            return batch
        f = self.follower
        for attempt in (0, 1):
            if self.cursor < f.base:
                return None  # fell too far behind; the client resumes with Last-Event-ID
            if self.cursor < f.end:
                batch = f.lines[self.cursor - f.base:]
                self.cursor = f.end
                return batch
            if f.ended:
                return None
            if attempt or timeout <= 0:
                return []  # woken without a line for us: time for a heartbeat
            await f.wait()  # the follower wakes us at least every HEARTBEAT_SECS
        return []

    def close(self) -> None:
        self.follower.unsubscribe(self)


_followers = {}


async def follow_file(path: str, source: str, finished: Callable[[], Awaitable[bool]], lines: int | None = 10,
                      after: int | None = None) -> StaticSource | FollowSource:
    """A line source for a log file still being written: the last `lines` lines (or those after
    id `after`), then every new line, until `await finished()` says the log has ended."""
    loop = asyncio.get_running_loop()
    if await finished():
        return StaticSource(await loop.run_in_executor(
            io_pool, functools.partial(read_tail, path, source, lines, after)))
    follower = _followers.get(path)
    if follower is None or follower.ended:
        follower = _followers[path] = FileFollower(path, source, finished)
        sub = FollowSource(follower, 0)
        follower.subscribe(sub)  # before start(): the poll loop runs while it has subscribers
        try:
            await follower.start()
        except BaseException:
            if _followers.get(path) is follower:
                del _followers[path]
            follower.ready.set()  # clients waiting for it find it unstarted and give up
            raise
    else:
        await follower.ready.wait()
        if follower._task is None:
            raise RuntimeError(f"could not follow {path}")
        sub = FollowSource(follower, follower.end)
        follower.subscribe(sub)
    # The snapshot (offset, cursor) is taken without an await in between, so history up to
    # `offset` and the follower's lines from `cursor` on meet exactly: no gap, no duplicate.
    sub.cursor, offset = follower.end, follower.offset
    sub.replay = await loop.run_in_executor(
        io_pool, functools.partial(read_tail, path, source, lines, after, offset, False))
    return sub
