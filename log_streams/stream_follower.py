"""A log the engine streams (an app container's output), followed ONCE for all its clients.

Before: every client of an app's log stream opened its own `docker logs -f` connection, read by
its own thread: 1,000 clients were 1,000 engine connections and threads (55 s to connect them,
the engine +190 MB). Now the first client of a log starts a `StreamFollower` (a
shared_follower.SharedFollower): it reads the last HISTORY lines, then follows the engine's
stream from there, and every later client is a cursor into its buffer.

- Replay is answered from memory when the buffer reaches back far enough: "the last N lines"
  when it holds N (or the whole log), a resume after Last-Event-ID when it holds that id. Else
  the engine's tail is read for that client and joined to the shared lines without a gap or a
  duplicate (the cursor is placed before the read; lines already replayed are skipped by id).
- The engine's stream ends when the container stops or is removed (a restart, an update
  re-creates it). The follower then asks `finished()` (the app is gone: the log has ended) and
  otherwise opens the stream again every RETRY_SECS, since the last line it has, so the new or
  restarted container is followed without the clients noticing (ids keep increasing).
- It stops (closing the engine connection) when its last client leaves.
"""
import asyncio
import datetime
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from log_streams.lines import LogLine, stamped_line
from log_streams.shared_follower import SharedFollower, Subscription
from log_streams.sources import run_blocking

log = logging.getLogger("berth.logstream")

HISTORY = 1000        # lines kept for replay, read from the engine's tail when a follower starts
RETRY_SECS = 1.0      # after the engine's stream ended: how soon to look for the container again
MAX_RETRY_SECS = 5.0  # a stopped app is looked at this often at most
TICK_SECS = 1.0       # how often an idle follower checks whether a heartbeat is due
SINCE_MARGIN = 1.0    # seconds re-read when the stream is opened again (the engine's `since` is
                      # a float: its last digits are not exact); re-read lines are skipped by id

Tail = Callable[[int], list[LogLine]]      # blocking: the last N lines (-1: all), ids increasing
OpenStream = Callable[[float | None], AsyncIterator[tuple[datetime.datetime | None, str]]]


class StreamFollower(SharedFollower):
    """Follows one engine log stream (key: the app id) for every client of it in this process."""

    history = HISTORY

    def __init__(self, key: str, source: str, tail: Tail, open_stream: OpenStream,
                 finished: Callable[[], Awaitable[bool]]) -> None:
        super().__init__(key, _followers)
        self.source = source
        self.tail = tail
        self.open_stream = open_stream    # (since: unix seconds or None = from the start)
        self.finished = finished          # async () -> bool: has the log ended for good?
        self.complete = False             # the buffer started at the log's first line
        self.last_id = 0

    async def start(self) -> None:
        first = await run_blocking(self.tail, HISTORY)
        self.complete = len(first) < HISTORY
        self.lines.extend(first)
        self.last_id = first[-1].id if first else 0
        self.ready.set()
        self._task = asyncio.create_task(self._run())

    async def _run(self):
        ticker = asyncio.create_task(self._heartbeats())
        retry = RETRY_SECS
        try:
            while self.subscribers:
                got = await self._follow_once()
                if await self._has_finished():
                    self._finish()
                    return
                retry = RETRY_SECS if got else min(retry * 2, MAX_RETRY_SECS)
                await asyncio.sleep(retry)
        finally:
            ticker.cancel()
            self._forget()

    async def _follow_once(self) -> bool:
        """Read the engine's stream from the last line we have until it ends; any new lines?"""
        seen_through = self.last_id   # lines stamped up to here are re-reads: skipped
        since = seen_through / 1e6 - SINCE_MARGIN if seen_through else None
        got = False
        stream = self.open_stream(since)
        try:
            async for when, text in stream:
                line = stamped_line(self.source, when, text)
                if seen_through:
                    if line.id <= seen_through:
                        continue
                    seen_through = 0
                if line.id <= self.last_id:
                    line.id = self.last_id + 1  # ids strictly increase: a resume skips up to one
                self.last_id = line.id
                self._append([line])
                got = True
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - no container (yet), engine gone: look again later
            log.debug("following %s: %s", self.key, e)
        finally:
            await stream.aclose()
        return got

    async def _heartbeats(self):
        while True:
            await asyncio.sleep(TICK_SECS)
            if self._heartbeat_due():
                self._notify()

    async def _has_finished(self):
        try:
            return await self.finished()
        except Exception:
            log.exception("checking whether the log of %s has ended failed", self.key)
            return False

    async def place(self, sub: Subscription, lines: int | None, after: int | None) -> None:
        """Put a new client where it starts: after id `after` (a resume), or `lines` back (None
        or negative: the whole log); from memory when the buffer reaches back that far."""
        whole = self.complete and self.base == 0
        if after is not None:
            cursor = self.index_after(after)
            if cursor is None and whole:
                cursor = 0
        elif lines is None or lines < 0:
            cursor = 0 if whole else None
        else:
            cursor = self.end - lines if len(self.lines) >= lines or whole else None
        if cursor is not None:
            sub.cursor = max(cursor, self.base)
            return
        # Not in memory: read the engine's tail for this client. The cursor is placed first, so
        # lines that arrive meanwhile are in the follower from it on: none is missed, and those
        # also in the tail are skipped by id.
        sub.cursor = self.end
        replay = await run_blocking(self.tail, -1 if after is not None or lines is None else lines)
        if after is not None:
            replay = [line for line in replay if line.id > after]
        sub.replay = replay
        sub.skip_through = replay[-1].id if replay else 0


_followers: dict[str, StreamFollower] = {}


def running(key: str) -> bool:
    """Is a follower of this log running now (then its source, e.g. the container, exists)?"""
    follower = _followers.get(key)
    return follower is not None and follower.running


async def follow_stream(key: str, source: str, tail: Tail, open_stream: OpenStream,
                        finished: Callable[[], Awaitable[bool]], lines: int | None = 10,
                        after: int | None = None) -> Subscription:
    """A line source for the log `key`: the last `lines` lines (or those after id `after`), then
    every new line, shared with every other client of that log in this process."""
    follower = _followers.get(key)
    if follower is None or follower.ended:
        follower = _followers[key] = StreamFollower(key, source, tail, open_stream, finished)
        sub = follower.subscribe(0)  # before start(): the follower runs while it has subscribers
        try:
            await follower.start()
        except BaseException:
            follower.unsubscribe(sub)
            follower.ready.set()  # clients waiting for it find it unstarted and give up
            raise
    else:
        await follower.ready.wait()
        if follower._task is None:
            raise RuntimeError(f"could not follow the log of {key}")
        sub = follower.subscribe()
    try:
        await follower.place(sub, lines, after)
    except BaseException:
        sub.close()
        raise
    return sub


def count() -> int:
    """Engine log followers running in this process."""
    return len(_followers)
