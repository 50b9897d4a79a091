"""Log streams as Server-Sent Events, served on the ASGI event loop: no Flask thread per client.

Why: Connexion's FlaskApp runs Flask behind a small thread pool (a2wsgi, 10 threads). A streaming
Flask response holds one of those threads for as long as the client listens, so ten open streams
would stall every other request. Here a stream costs one coroutine and a few small objects.

How:
- `StreamMiddleware` sits in Connexion's middleware stack after routing, security (auth.py:
  token, x-roles, scope, rate limit) and request validation (`lines`, `format`), just before the
  Flask app. For an operation whose handler is marked `@operation` it answers itself: it checks
  `Accept: text/event-stream`, calls the (async) handler for a line source, and writes the SSE
  response with `serve_events`. Every other request passes through untouched.
- A line source has `await next_batch(timeout)` -> list of LogLine, `[]` when idle for `timeout`
  seconds, None when the log has ended; and `close()`. `follow_file` follows a log file of
  `<ISO timestamp> <message>` lines (the Cloudron log format) with ONE poller per file shared by
  all its clients; `IterSource` adapts any async iterator of lines (e.g. `docker logs -f`).
- Events: `retry: 3000` first, then per line `id: <realtimeTimestamp>` and `data: <JSON
  {realtimeTimestamp, message, source}>` (or the stored line with format=plain), a `:` comment
  heartbeat when idle, end of response when the source ends. Each event is encoded once and
  shared by every client of that line.
- Resume: ids are the lines' timestamps in microseconds, made strictly increasing per log (a
  line whose timestamp is not later than the previous one gets previous + 1), so they are
  deterministic for a given file. A client reconnecting with `Last-Event-ID` gets exactly the
  lines after that id. A finished log with nothing after the given id answers 204, which tells
  EventSource to stop reconnecting.
"""
import asyncio
import collections
import concurrent.futures
import datetime
import functools
import importlib
import json
import logging
import os
import re
import signal

from starlette.datastructures import Headers, QueryParams

from core.errors import BadRequest

log = logging.getLogger("berth.logstream")

HEARTBEAT_SECS = 15.0      # comment line on idle streams, well under common proxy idle timeouts (60 s)
RETRY_MS = 3000
POLL_SECS = 0.025          # file poll period of a follower: bounds line delivery latency
FINISHED_CHECK_SECS = 0.5  # how often a follower asks whether its log has ended
TAIL_CAP = 8 * 1024 * 1024  # never read more than this much of a file to replay history
READ_CAP = 1024 * 1024     # most bytes a follower reads per poll, to keep the event loop responsive
TRIM_AT = 4096             # buffered lines before a follower drops what every client has seen
LAG_LIMIT = 65536          # a client this far behind is ended; it resumes with Last-Event-ID
WAKE_CHUNK = 50            # clients woken per event-loop turn when a line arrives

_EPOCH = datetime.datetime(1970, 1, 1)
_US = datetime.timedelta(microseconds=1)
# Replay reads and "has the log ended" checks block; they run here, off the event loop.
_io = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="logstream")


# ---------------------------------------------------------------------------------------------
# Lines

def now_us():
    return (datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - _EPOCH) // _US


def format_timestamp(us):
    """Microseconds since the epoch -> `2024-05-01T12:00:00.123456Z`."""
    return (_EPOCH + datetime.timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text):
    """ISO-8601 timestamp -> microseconds since the epoch, or None."""
    if len(text) < 19 or not text[:4].isdigit():
        return None
    try:
        value = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return (value - _EPOCH) // _US


class LogLine:
    """One log line. `id` is its realtimeTimestamp (microseconds), unique and increasing per log."""
    __slots__ = ("id", "message", "raw", "source", "_json", "_plain")

    def __init__(self, id, message, raw, source):
        self.id = id
        self.message = message
        self.raw = raw
        self.source = source
        self._json = None
        self._plain = None

    def as_dict(self):
        return {"realtimeTimestamp": self.id, "message": self.message, "source": self.source}

    def json(self):
        return json.dumps(self.as_dict(), ensure_ascii=False, separators=(",", ":"))

    def event(self, plain=False):
        """The SSE event for this line, encoded once however many clients receive it."""
        if plain:
            if self._plain is None:
                # A bare CR would end the data field early on the client side.
                self._plain = f"id: {self.id}\ndata: {self.raw.replace(chr(13), '')}\n\n".encode()
            return self._plain
        if self._json is None:
            self._json = f"id: {self.id}\ndata: {self.json()}\n\n".encode()
        return self._json


def parse_lines(texts, prev_id, source):
    """Stored lines -> (LogLine list, id of the last line). Lines without a timestamp are kept
    whole as the message; empty lines are skipped."""
    out = []
    for raw in texts:
        if raw.endswith("\r"):
            raw = raw[:-1]
        if not raw:
            continue
        head, _, rest = raw.partition(" ")
        ts = parse_timestamp(head)
        if ts is None:
            message, ts = raw, prev_id + 1
        else:
            message = rest
        prev_id = ts if ts > prev_id else prev_id + 1
        out.append(LogLine(prev_id, message, raw, source))
    return out, prev_id


def format_line(us, message):
    return f"{format_timestamp(us)} {message}\n"


def read_tail(path, source, lines=10, after=None, end=None, partial=True):
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


# ---------------------------------------------------------------------------------------------
# Sources

class StaticSource:
    """A fixed list of lines, then the end (a finished log)."""

    def __init__(self, lines):
        self._lines = lines

    async def next_batch(self, timeout):
        lines, self._lines = self._lines, None
        return lines or None

    def close(self):
        pass


class IterSource:
    """Adapts an async iterator of lines (LogLine, or stored text lines) to a line source.
    Ids are made strictly increasing (a line sharing its predecessor's timestamp gets +1 us),
    since a resuming client skips every id up to the last one it saw."""

    def __init__(self, lines, source="", replay=()):
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

    async def next_batch(self, timeout):
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

    def close(self):
        self._task.cancel()


class FileFollower:
    """Follows one log file for every client of it in this process: one poll loop per file."""

    def __init__(self, path, source, finished):
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
    def end(self):
        return self.base + len(self.lines)

    async def start(self):
        loop = asyncio.get_running_loop()
        self.offset, self.last_id = await loop.run_in_executor(_io, _position, self.path, self.source)
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
        # Small reads of a local file straight from the loop: cheaper than a thread hop per poll.
        """Take in the lines written since the last read; True if there were any."""
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

    def wait(self):
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

    def subscribe(self, sub):
        self.subscribers.add(sub)

    def unsubscribe(self, sub):
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

    def __init__(self, follower, cursor):
        self.follower = follower
        self.cursor = cursor
        self.replay = None

    async def next_batch(self, timeout):
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

    def close(self):
        self.follower.unsubscribe(self)


_followers = {}


async def follow_file(path, source, finished, lines=10, after=None):
    """A line source for a log file still being written: the last `lines` lines (or those after
    id `after`), then every new line, until `await finished()` says the log has ended."""
    loop = asyncio.get_running_loop()
    if await finished():
        return StaticSource(await loop.run_in_executor(
            _io, functools.partial(read_tail, path, source, lines, after)))
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
        _io, functools.partial(read_tail, path, source, lines, after, offset, False))
    return sub


def run_blocking(fn, *args):
    """Run a short blocking call (a database lookup) off the event loop."""
    return asyncio.get_running_loop().run_in_executor(_io, functools.partial(fn, *args))


# ---------------------------------------------------------------------------------------------
# SSE response

async def serve_events(send, receive, source, plain=False, last_event_id=None,
                       heartbeat=HEARTBEAT_SECS):
    """Write `source` as an SSE response until it ends, the client leaves or the server stops."""
    try:
        first = await source.next_batch(0)
        if last_event_id is not None and first:
            first = [line for line in first if line.id > last_event_id]
        if first is None and last_event_id is not None:
            # Nothing after the client's last event and the log has ended: 204 stops EventSource
            # from reconnecting forever to a finished log.
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),  # tell nginx-style proxies not to buffer the stream
        ]})
        writer = asyncio.create_task(_write(send, source, first, plain, last_event_id, heartbeat))
        watcher = asyncio.create_task(_until_disconnect(receive))
        waiting = {writer, watcher, _closing()}
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        for task in (writer, watcher):
            task.cancel()
        if watcher not in done:  # the log ended or the server is stopping: end the response
            try:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:
                pass
        if writer in done and not writer.cancelled() and writer.exception():
            log.error("log stream failed", exc_info=writer.exception())
    finally:
        source.close()


async def _write(send, source, first, plain, last_id, heartbeat):
    head = f"retry: {RETRY_MS}\n\n".encode()
    batch = first or []
    while True:
        if last_id is not None and batch and batch[0].id <= last_id:
            batch = [line for line in batch if line.id > last_id]
        if batch:
            last_id = batch[-1].id
            body = b"".join(line.event(plain) for line in batch)
        else:
            body = b": heartbeat\n\n" if head is None else b""
        if head is not None:
            body, head = head + body, None
        await send({"type": "http.response.body", "body": body, "more_body": True})
        batch = await source.next_batch(heartbeat)
        if batch is None:
            return


async def _until_disconnect(receive):
    while (await receive())["type"] != "http.disconnect":
        pass


# The server is stopping: streams end so that graceful shutdown is not held up by clients that
# would listen forever (uvicorn waits for open responses before running the lifespan shutdown).
_closing_futures = {}


def _closing():
    loop = asyncio.get_running_loop()
    future = _closing_futures.get(loop)
    if future is None:
        future = _closing_futures[loop] = loop.create_future()
    return future


def end_streams_on_shutdown():
    """Chain onto the SIGTERM/SIGINT handlers the server installed (call from the lifespan)."""
    loop = asyncio.get_running_loop()
    closing = _closing()

    def close():
        if not closing.done():
            closing.set_result(None)

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)

        def handler(signum, frame, previous=previous):
            loop.call_soon_threadsafe(close)
            if callable(previous):
                previous(signum, frame)
            elif previous == signal.SIG_DFL:
                raise SystemExit(128 + signum)
        signal.signal(sig, handler)


# ---------------------------------------------------------------------------------------------
# ASGI middleware

def operation(fn=None, *, plain=True):
    """Mark an async handler as a log stream operation. It is called with the path parameters
    (snake_case), `lines`, `last_event_id` (int or None) and `token_info`, and returns a line
    source. `plain=False`: the operation always streams JSON, whatever `format` says."""
    def mark(fn):
        fn.log_stream = {"plain": plain}
        return fn
    return mark(fn) if fn is not None else mark


def _snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class StreamMiddleware:
    """Serves `@operation` handlers as SSE on the event loop; everything else goes on to Flask."""

    def __init__(self, app):
        self.app = app
        self._handlers = {}

    def _handler(self, operation_id):
        if operation_id not in self._handlers:
            module, _, name = (operation_id or "").rpartition(".")
            fn = None
            try:
                fn = getattr(importlib.import_module(module), name, None) if module else None
            except ImportError:
                pass
            self._handlers[operation_id] = fn if hasattr(fn, "log_stream") else None
        return self._handlers[operation_id]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        extensions = scope.get("extensions") or {}
        handler = self._handler((extensions.get("connexion_routing") or {}).get("operation_id"))
        if handler is None:
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        if "text/event-stream" not in headers.get("accept", ""):
            raise BadRequest("this is an EventSource stream: send 'Accept: text/event-stream'",
                             field="Accept")
        query = QueryParams(scope.get("query_string", b""))
        lines = int(query.get("lines", 10))  # validated against the spec by Connexion already
        plain = handler.log_stream["plain"] and query.get("format", "json") != "json"
        try:
            last_event_id = int(headers["last-event-id"])
        except (KeyError, ValueError):
            last_event_id = None  # absent, or not one of our ids: start afresh
        params = {_snake(k): v for k, v in (scope.get("path_params") or {}).items()}
        token_info = (extensions.get("connexion_context") or {}).get("token_info")
        source = await handler(**params, lines=lines, last_event_id=last_event_id,
                               token_info=token_info)
        await serve_events(send, receive, source, plain=plain, last_event_id=last_event_id)
