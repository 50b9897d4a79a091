"""ONE follower per followed log in this process, shared by all its clients.

A log followed live (a task's log file, an app container's output) is read once, whatever the
number of clients: a `SharedFollower` keeps the lines read since it started (from absolute index
`base`, trimmed from the front once every client has them), and each client is a `Subscription`
with its own cursor into that buffer. A new line costs one read and one JSON encoding
(web.event_stream caches the encoded event on the LogLine), then one wake-up per waiting client,
handed out by one `Waker` per event loop, WAKE_CHUNK per loop turn across all followers, so
other requests are served in between.

What a kind of log adds (how lines come in: file_follower polls a file, stream_follower reads
the engine's log stream) is a subclass with its own `_run` loop and `start`; keeping clients,
waking them, heartbeats, trimming, lagging clients and stopping when the last client leaves are
here, once.
"""
import asyncio
import collections
import logging

from log_streams.lines import LogLine
from log_streams.sources import HEARTBEAT_SECS

log = logging.getLogger("berth.logstream")

TRIM_AT = 4096         # buffered lines before a follower drops what every client has seen
LAG_LIMIT = 65536      # a client this far behind is ended; it resumes with Last-Event-ID
WAKE_CHUNK = 50        # clients woken per event-loop turn when a line arrives


class SharedFollower:
    """The lines of one log for every client of it. `history`: lines kept for replay even when
    every client has them (a follower that can answer "the last N lines" from memory)."""

    history = 0

    def __init__(self, key: str, registry: dict) -> None:
        self.key = key
        self._registry = registry         # where this follower is found by key while it runs
        self.lines: list[LogLine] = []    # lines read since start, from absolute index `base`
        self.base = 0
        self.ended = False
        self.subscribers: set[Subscription] = set()
        self.ready = asyncio.Event()      # set once start() has run (or failed)
        self._waiters: list[asyncio.Future] = []  # futures of clients waiting for the next line
        self._notified = asyncio.get_running_loop().time()
        self._dirty = False               # queued with the Waker for a wake-up
        self._task: asyncio.Task | None = None

    @property
    def end(self) -> int:
        return self.base + len(self.lines)

    @property
    def running(self) -> bool:
        return self._task is not None and not self.ended

    # -- lines in ----------------------------------------------------------------------------

    def _append(self, lines: list[LogLine]) -> None:
        """Take in new lines and schedule waking the clients (once, however many lines come)."""
        if not lines:
            return
        self.lines.extend(lines)
        self._trim()
        self._notify()

    def _notify(self) -> None:
        if not self._dirty:
            self._dirty = True
            _waker().queue(self)

    def _heartbeat_due(self) -> bool:
        """No line for a while still wakes the clients: they send a heartbeat."""
        return asyncio.get_running_loop().time() - self._notified >= HEARTBEAT_SECS

    def _finish(self) -> None:
        """The log has ended for good: clients get what is left, then the end."""
        self.ended = True
        self._forget()
        self._notify()

    def _take_waiters(self) -> list[asyncio.Future]:
        """The clients to wake for what arrived since the last wake-up (the Waker calls this)."""
        self._dirty = False
        self._notified = asyncio.get_running_loop().time()
        waiters, self._waiters = self._waiters, []
        return waiters

    def wait(self) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        return future

    def _trim(self):
        if len(self.lines) < TRIM_AT + self.history:
            return
        keep_from = min((s.cursor for s in self.subscribers), default=self.end)
        keep_from = min(keep_from, self.end - self.history)
        keep_from = max(keep_from, self.end - LAG_LIMIT)  # laggards beyond this are ended
        if keep_from > self.base:
            del self.lines[:keep_from - self.base]
            self.base = keep_from

    # -- clients -----------------------------------------------------------------------------

    def subscribe(self, cursor: int | None = None) -> "Subscription":
        """A client reading from absolute index `cursor` (default: the lines from now on)."""
        sub = Subscription(self, self.end if cursor is None else cursor)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: "Subscription") -> None:
        self.subscribers.discard(sub)
        if not self.subscribers:
            self._forget()  # a new client from now on starts a new follower
            if self._task is not None:
                self._task.cancel()

    def _forget(self) -> None:
        if self._registry.get(self.key) is self:
            del self._registry[self.key]

    def index_after(self, after: int) -> int | None:
        """Absolute index of the first buffered line with id > after, or None when the buffer
        does not reach back far enough to know (lines after `after` may be missing from it)."""
        lines = self.lines
        if not lines or lines[0].id > after:
            return None
        lo, hi = 0, len(lines)
        while lo < hi:
            mid = (lo + hi) // 2
            if lines[mid].id <= after:
                lo = mid + 1
            else:
                hi = mid
        return self.base + lo


class Subscription:
    """One client's view of a SharedFollower (a line source): `replay` first (history read
    elsewhere), then the shared lines from `cursor` on, skipping those up to `skip_through`
    (already in the replay)."""

    def __init__(self, follower: SharedFollower, cursor: int) -> None:
        self.follower = follower
        self.cursor = cursor
        self.replay: list[LogLine] | None = None
        self.skip_through = 0

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
                if self.skip_through and batch[0].id <= self.skip_through:
                    batch = [line for line in batch if line.id > self.skip_through]
                    if not batch:
                        continue
                return batch
            if f.ended:
                return None
            if attempt or timeout <= 0:
                return []  # woken without a line for us: time for a heartbeat
            await f.wait()  # the follower wakes us at least every HEARTBEAT_SECS
        return []

    def close(self) -> None:
        self.follower.unsubscribe(self)


def counts(*registries: dict) -> int:
    """Followers running in these registries (for the followers gauge)."""
    return sum(len(r) for r in registries)


class Waker:
    """Wakes the waiting clients of every follower of this event loop, WAKE_CHUNK per loop turn
    IN ALL: a line for 5,000 clients is 5,000 task wake-ups (each writes to its socket), and in
    between other requests get their turn instead of queueing behind the whole fan-out. One
    waker for all followers, so ten apps logging at once do not make each turn ten times longer
    (a per-follower chunk did: GET /cloudron/status waited behind all ten). Followers are served
    in the order their lines came; lines that arrive meanwhile are taken by the clients not yet
    woken, and those woken earlier are woken again in the follower's next round."""

    def __init__(self) -> None:
        self._ready: collections.deque[SharedFollower] = collections.deque()
        self._task: asyncio.Task | None = None

    def queue(self, follower: SharedFollower) -> None:
        self._ready.append(follower)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self):
        try:
            budget = WAKE_CHUNK
            while self._ready:
                waiters = self._ready.popleft()._take_waiters()
                for future in waiters:
                    if not future.done():  # done = cancelled: that client has gone
                        future.set_result(None)
                        budget -= 1
                        if budget <= 0:
                            await asyncio.sleep(0)
                            budget = WAKE_CHUNK
        finally:
            self._task = None


_wakers: dict[asyncio.AbstractEventLoop, Waker] = {}


def _waker() -> Waker:
    loop = asyncio.get_running_loop()
    waker = _wakers.get(loop)
    if waker is None:
        for old in [other for other in _wakers if other.is_closed()]:
            del _wakers[old]
        waker = _wakers[loop] = Waker()
    return waker
