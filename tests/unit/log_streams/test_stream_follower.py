"""One engine log follower per log, shared by its clients (log_streams.stream_follower), over an
in-memory log standing in for the engine: `docker logs` tail and `docker logs -f --since`."""
import asyncio
import datetime

from log_streams import stream_follower
from log_streams.lines import stamped_line, strictly_increasing

T0 = 1714564800.0


class Log:
    """A container log: lines stamped at T0 + i ms; followers see appends until `stop()`."""

    def __init__(self, count=0):
        self.entries = []
        self.opened = 0
        self.changed = asyncio.Event()
        self.stopped = False
        for _ in range(count):
            self.write()

    def write(self, text=None):
        when = datetime.datetime.fromtimestamp(T0 + len(self.entries) / 1000, datetime.timezone.utc)
        self.entries.append((when, text or f"line {len(self.entries)}"))
        self.changed.set()

    def tail(self, count):
        rows = self.entries if count < 0 else self.entries[-count:] if count else []
        return strictly_increasing([stamped_line("app", when, text) for when, text in rows])

    async def stream(self, since):
        self.opened += 1
        self.stopped = False
        i = 0 if since is None else next((n for n, (w, _) in enumerate(self.entries)
                                          if w.timestamp() >= since), len(self.entries))
        while not self.stopped:
            while i < len(self.entries):
                yield self.entries[i]
                i += 1
            self.changed.clear()
            await self.changed.wait()

    def stop(self):  # the container stops: the engine ends the stream
        self.stopped = True
        self.changed.set()


async def follow(log, lines=0, after=None, gone=lambda: False):
    async def finished():
        return gone()
    return await stream_follower.follow_stream("app1", "app", log.tail, log.stream, finished, lines, after)


async def drain(sub, until):
    got = []
    while not got or got[-1].message != until:
        batch = await asyncio.wait_for(sub.next_batch(5), 5)
        assert batch is not None, got
        got += batch
    return got


def test_clients_share_one_follower_replay_from_memory_and_resume_exactly(monkeypatch):
    async def run():
        log = Log(20)
        a = await follow(log, lines=3)
        b = await follow(log, lines=5)
        await asyncio.sleep(0.01)  # the follower opens the stream
        assert log.opened == 1 and stream_follower.count() == 1
        assert [x.message for x in await a.next_batch(0)] == ["line 17", "line 18", "line 19"]
        assert [x.message for x in await b.next_batch(0)] == [f"line {i}" for i in range(15, 20)]
        log.write("new")
        got_a, got_b = await drain(a, "new"), await drain(b, "new")
        assert got_a[-1] is got_b[-1]  # one LogLine (one id, one encoding) for every client
        resume = got_a[-1].id
        log.write("x")
        log.write("y")
        c = await follow(log, lines=10, after=resume)
        assert [x.message for x in await drain(c, "y")] == ["x", "y"]
        assert log.opened == 1
        for sub in (a, b, c):
            sub.close()
        assert stream_follower.count() == 0
    asyncio.run(run())


def test_a_stopped_container_is_followed_again_without_duplicates(monkeypatch):
    monkeypatch.setattr(stream_follower, "RETRY_SECS", 0.01)

    async def run():
        log = Log(3)
        sub = await follow(log)
        log.write("before")
        await drain(sub, "before")
        log.stop()          # restart: the engine's stream ends, the log goes on
        await asyncio.sleep(0.05)
        log.write("after")
        got = await drain(sub, "after")
        assert [x.message for x in got] == ["after"]
        assert log.opened >= 2
        sub.close()
    asyncio.run(run())


def test_the_log_ends_when_the_app_is_gone(monkeypatch):
    monkeypatch.setattr(stream_follower, "RETRY_SECS", 0.01)

    async def run():
        log, gone = Log(2), []
        sub = await follow(log, gone=lambda: bool(gone))
        await asyncio.sleep(0.01)  # the follower opens the stream
        gone.append(True)
        log.stop()
        while (batch := await asyncio.wait_for(sub.next_batch(5), 5)) is not None:
            assert batch == []
        assert stream_follower.count() == 0
        sub.close()
    asyncio.run(run())


def test_more_history_than_memory_holds_is_read_from_the_engine(monkeypatch):
    monkeypatch.setattr(stream_follower, "HISTORY", 5)
    monkeypatch.setattr(stream_follower.StreamFollower, "history", 5)

    async def run():
        log = Log(50)
        sub = await follow(log, lines=20)
        replay = await sub.next_batch(0)
        assert [x.message for x in replay] == [f"line {i}" for i in range(30, 50)]
        log.write("next")
        assert [x.message for x in await drain(sub, "next")] == ["next"]  # no duplicate, no gap
        sub.close()
    asyncio.run(run())
