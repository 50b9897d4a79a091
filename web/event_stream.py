"""Log streams as Server-Sent Events, served on the ASGI event loop: no Flask thread per client.

Why: Connexion's FlaskApp runs Flask behind a small thread pool (a2wsgi). A streaming Flask
response holds one of those threads for as long as the client listens, so a few open streams
would stall every other request. Here a stream costs one coroutine and a few small objects.

How:
- `StreamMiddleware` sits in Connexion's middleware stack after routing, security (token,
  x-roles, scope, rate limit) and request validation (`lines`, `format`), just before the
  Flask app. For an operation whose handler is marked `@operation` it answers itself: it checks
  `Accept: text/event-stream`, calls the (async) handler for a line source (log_streams), and
  writes the SSE response with `serve_events`. Every other request passes through untouched.
- Events: `retry: 3000` first, then per line `id: <realtimeTimestamp>` and `data: <JSON
  {realtimeTimestamp, message, source}>` (or the stored line with format=plain), a `:` comment
  heartbeat when idle, end of response when the source ends. Each event is encoded once and
  shared by every client of that line.
- Resume: ids are the lines' timestamps in microseconds, strictly increasing per log
  (log_streams.lines). A client reconnecting with `Last-Event-ID` gets exactly the lines after
  that id. A finished log with nothing after the given id answers 204, which tells EventSource
  to stop reconnecting.
- Shutdown: `end_streams_on_shutdown` (called from the lifespan) ends every stream when the
  server is asked to stop, so graceful shutdown is not held up by clients that never leave.
"""
import asyncio
import importlib
import logging
import signal

from connexion.decorators.parameter import pythonic
from starlette.datastructures import Headers, QueryParams

from core.errors import BadRequest
from log_streams import HEARTBEAT_SECS, follower_counts
from metrics import instruments

log = logging.getLogger("berth.logstream")

RETRY_MS = 3000


def encode(line, plain: bool = False) -> bytes:
    """The SSE event for this line, encoded once however many clients receive it."""
    cache = line.encoded
    if cache is None:
        cache = line.encoded = [None, None]
    slot = 1 if plain else 0
    event = cache[slot]
    if event is None:
        if plain:
            # A bare CR would end the data field early on the client side.
            event = f"id: {line.id}\ndata: {line.raw.replace(chr(13), '')}\n\n".encode()
        else:
            event = f"id: {line.id}\ndata: {line.json()}\n\n".encode()
        cache[slot] = event
    return event


# ---------------------------------------------------------------------------------------------
# SSE response

async def serve_events(send, receive, source, plain: bool = False, last_event_id: int | None = None,
                       heartbeat: float = HEARTBEAT_SECS) -> None:
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
            # One line (the common case with many clients): the shared bytes as they are.
            body = encode(batch[0], plain) if len(batch) == 1 else b"".join(encode(line, plain) for line in batch)
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


def end_streams_on_shutdown() -> None:
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

def operation(fn=None, *, plain: bool = True):
    """Mark an async handler as a log stream operation. It is called with the path parameters
    (pythonic names, as Connexion passes them to Flask handlers), `lines`, `last_event_id` (int
    or None) and `token_info`, and returns a line source. `plain=False`: the operation always
    streams JSON, whatever `format` says."""
    def mark(fn):
        fn.log_stream = {"plain": plain}
        return fn
    return mark(fn) if fn is not None else mark


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
        params = {pythonic(k): v for k, v in (scope.get("path_params") or {}).items()}
        token_info = (extensions.get("connexion_context") or {}).get("token_info")
        source = await handler(**params, lines=lines, last_event_id=last_event_id,
                               token_info=token_info)
        clients = instruments.log_stream_clients
        clients.inc()
        _count_followers()
        try:
            await serve_events(send, receive, source, plain=plain, last_event_id=last_event_id)
        finally:
            clients.dec()
            _count_followers()


def _count_followers():
    """berth_log_stream_followers: shared followers of this process (one per followed log)."""
    for kind, count in follower_counts().items():
        instruments.log_stream_followers.labels(kind).set(count)
