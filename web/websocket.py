"""Exec sessions on the event loop: GET /apps/{appid}/execws (WebSocket) and GET /apps/{appid}/exec
(HTTP upgrade to a raw TCP stream, what Cloudron's CLI uses).

Why outside Connexion: its stack serves HTTP requests (and Flask answers them in a small thread
pool); neither a WebSocket nor a hijacked connection fits. `ExecMiddleware` sits at the outer
end of the middleware stack and answers a WebSocket on the execws path and an `Upgrade: tcp`
GET on the exec path itself; everything else (a plain GET there too: its handler answers 400)
passes through untouched. It applies the same checks as every operation: the token (Authorization
Bearer, `access_token` query or x-api-key) and the operation's `x-roles` are decided by
web.security.authorize, the one place for that decision, with the operation id of the path.

Relay: the engine's exec socket is non-blocking and read/written with the loop's sock_recv /
sock_sendall, so a session costs no thread. Each direction waits for the other side to take
its bytes (backpressure); when either side ends, the other is ended and the exec is closed
(containers.exec_session.ExecSession.close, in a worker thread since it calls the engine).

End of a session:
- WebSocket: the server closes with code 4000 + exit code (0..255; reason `exit <code>`), or
  1011 when the exit code cannot be read. Output is sent as text frames (UTF-8, decoded
  incrementally; stdout and stderr alike). Client frames are stdin, except a text frame
  holding a JSON object with "type": "resize" ({"type":"resize","rows":R,"columns":C}) or
  "type": "eof" (closes stdin, for commands reading it to the end).
- Raw: with tty=true raw bytes both ways (the exit code is not in-band); without a tty the
  output is the engine's multiplexed stream (8-byte frame headers, type 1 stdout, 2 stderr)
  followed by a last frame of type 3 whose payload is JSON {"exitCode": N}; the client sends
  stdin as frames of a 4-byte big-endian length and the payload, length 0 for end of stdin.
"""
import asyncio
import codecs
import json
import logging
import re
import struct
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers

from apps import exec as app_exec
from core.errors import ApiError, Unauthorized, body
from eventlog import Actor
from web import security

log = logging.getLogger("berth.exec")

PATH = re.compile(r"^/api/v1/apps/([^/]+)/(exec|execws)$")
# The file manager lists a root folder as `.../files/` (Cloudron's `files/*` matches nothing);
# Werkzeug's path converter needs at least a character, so that form is served as `.../files/.`
# (file_access.tree.parts reads "." as the root).
FILES_ROOT = re.compile(r"^/api/v1/(apps|volumes)/[^/]+/files/$")
OPERATIONS = {"exec": "handlers.apps.exec_app", "execws": "handlers.apps.exec_ws"}
CHUNK = 64 * 1024


class _Operation:
    """What web.security.authorize reads of a request: the routed operation and the method."""

    def __init__(self, operation_id):
        self.scope = {"extensions": {"connexion_routing": {"operation_id": operation_id}}, "method": "GET"}


async def _authorize(scope, query, operation_id) -> Actor:
    headers = Headers(scope=scope)
    auth = headers.get("authorization")
    token_info = None
    if auth:
        token_info = await security.token_from_bearer(auth, _Operation(operation_id))
    elif query.get("access_token"):
        token_info = await security.token_from_query(query["access_token"], _Operation(operation_id))
    elif headers.get("x-api-key"):
        token_info = await security.token_from_api_key(headers["x-api-key"], _Operation(operation_id))
    else:
        raise Unauthorized("No token: send Authorization: Bearer <token> or access_token")
    client = scope.get("client")
    return Actor(user_id=token_info["sub"], username=token_info.get("username"),
                 role=token_info["role"], ip=client[0] if client else None)


async def _open(scope, app_id, operation_id):
    """Authorizes, checks the app and starts the exec: (session, options)."""
    raw = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    query = {k: v[-1] for k, v in raw.items()}
    actor = await _authorize(scope, query, operation_id)
    options = app_exec.parse_options(query.get("cmd"), query.get("tty"), query.get("rows"), query.get("columns"))
    session = await run_in_threadpool(app_exec.start, actor, app_id, options)
    session.sock.setblocking(False)
    return session, options


class ExecMiddleware:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and FILES_ROOT.match(scope.get("path", "")):
            scope = dict(scope, path=scope["path"] + ".", raw_path=(scope.get("raw_path") or b"") + b".")
        match = PATH.match(scope.get("path", "")) if scope["type"] in ("http", "websocket") else None
        if match is None:
            return await self.app(scope, receive, send)
        app_id, kind = match.groups()
        if scope["type"] == "websocket":
            if kind != "execws":
                return await _ws_refuse(scope, send, None, 404)
            return await _serve_ws(scope, receive, send, app_id)
        upgrade = (Headers(scope=scope).get("upgrade") or "").lower()
        if kind == "execws" or scope["method"] != "GET" or upgrade != "tcp":
            # A plain request takes the normal path (token, x-roles, validation) to its handler,
            # which answers 400: it did not ask for the upgrade.
            return await self.app(scope, receive, send)
        return await _serve_raw(scope, receive, send, app_id)


async def _http_error(send, status, message, headers=None):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            *[(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]]})
    await send({"type": "http.response.body", "body": json.dumps(body(status, message)).encode()})


# --- WebSocket -------------------------------------------------------------------------------

async def _ws_refuse(scope, send, exc, status=None):
    status = status or getattr(exc, "status", 500)
    message = getattr(exc, "message", None) or "No such route"
    if "websocket.http.response" in (scope.get("extensions") or {}):
        await send({"type": "websocket.http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "websocket.http.response.body", "body": json.dumps(body(status, message)).encode()})
    else:
        await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})


async def _serve_ws(scope, receive, send, app_id):
    first = await receive()
    if first["type"] != "websocket.connect":
        return
    try:
        session, options = await _open(scope, app_id, OPERATIONS["execws"])
    except ApiError as exc:
        return await _ws_refuse(scope, send, exc)
    try:
        await send({"type": "websocket.accept"})
        loop = asyncio.get_running_loop()
        output = asyncio.create_task(_ws_output(loop, session, send))
        incoming = asyncio.create_task(_ws_input(loop, session, receive))
        done, _pending = await asyncio.wait({output, incoming}, return_when=asyncio.FIRST_COMPLETED)
        if output in done:
            incoming.cancel()
            code = await run_in_threadpool(session.exit_code)
            close = 4000 + code if isinstance(code, int) and 0 <= code <= 255 else 1011
            await send({"type": "websocket.close", "code": close, "reason": f"exit {code}"})
        else:
            output.cancel()
        await asyncio.gather(output, incoming, return_exceptions=True)
    except OSError:
        pass  # the client went away while we were writing
    finally:
        await run_in_threadpool(session.close)


async def _ws_output(loop, session, send):
    decoders = {}
    async for stream, data in _engine_output(loop, session):
        decoder = decoders.setdefault(stream, codecs.getincrementaldecoder("utf-8")("replace"))
        text = decoder.decode(data)
        if text:
            await send({"type": "websocket.send", "text": text})


async def _ws_input(loop, session, receive):
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        data = message.get("bytes")
        text = message.get("text")
        if text is not None:
            control = _control(text)
            if control is not None:
                await _apply_control(session, control)
                continue
            data = text.encode()
        if data:
            await loop.sock_sendall(session.sock, data)


def _control(text):
    if not text.startswith("{") or '"type"' not in text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, dict) and value.get("type") in ("resize", "eof"):
        return value
    return None


async def _apply_control(session, control):
    if control["type"] == "eof":
        session.close_stdin()
        return
    rows, columns = control.get("rows"), control.get("columns")
    if isinstance(rows, int) and isinstance(columns, int) and 0 < rows <= 10000 and 0 < columns <= 10000:
        await run_in_threadpool(session.resize, rows, columns)


async def _engine_output(loop, session):
    """(stream type, bytes) from the engine until the command's output ends: type 0 for a tty's
    raw stream, 1/2 for stdout/stderr frames without one."""
    buffer = b""
    while True:
        data = await loop.sock_recv(session.sock, CHUNK)
        if not data:
            return
        if session.tty:
            yield 0, data
            continue
        buffer += data
        while len(buffer) >= 8:
            stream, length = buffer[0], struct.unpack(">I", buffer[4:8])[0]
            if len(buffer) < 8 + length:
                break
            yield stream, buffer[8:8 + length]
            buffer = buffer[8 + length:]


# --- raw upgrade (Upgrade: tcp) -----------------------------------------------------------------

class _Hijacked(asyncio.Protocol):
    """The client connection after the 101: its bytes go to a queue (reading paused while the
    queue is long, so a fast client cannot fill memory)."""

    def __init__(self, transport):
        self.transport = transport
        self.queue = asyncio.Queue()
        self.paused = False
        self.gone = asyncio.Event()

    def data_received(self, data):
        self.queue.put_nowait(data)
        if self.queue.qsize() > 16 and not self.paused:
            self.paused = True
            self.transport.pause_reading()

    def eof_received(self):
        self.queue.put_nowait(b"")
        return True  # keep sending output after the client's half-close

    def connection_lost(self, exc):
        self.queue.put_nowait(None)
        self.gone.set()

    async def get(self):
        data = await self.queue.get()
        if self.paused and self.queue.qsize() < 4:
            self.paused = False
            self.transport.resume_reading()
        return data


async def _serve_raw(scope, receive, send, app_id):
    cycle = getattr(receive, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None or not hasattr(transport, "set_protocol"):
        return await _http_error(send, 501, "This server cannot hand over the connection (use execws)")
    try:
        session, _options = await _open(scope, app_id, OPERATIONS["exec"])
    except ApiError as exc:
        return await _http_error(send, exc.status, exc.message, exc.headers)
    old = transport.get_protocol()
    hijacked = _Hijacked(transport)
    transport.set_protocol(hijacked)
    cycle.response_started = cycle.response_complete = True  # the server must not answer again
    transport.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
    loop = asyncio.get_running_loop()
    try:
        output = asyncio.create_task(_raw_output(loop, session, transport))
        incoming = asyncio.create_task(_raw_input(loop, session, hijacked))
        done, _pending = await asyncio.wait({output, incoming}, return_when=asyncio.FIRST_COMPLETED)
        if output in done and not hijacked.gone.is_set():
            incoming.cancel()
            if not session.tty:
                code = await run_in_threadpool(session.exit_code)
                payload = json.dumps({"exitCode": code}).encode()
                transport.write(bytes([3, 0, 0, 0]) + struct.pack(">I", len(payload)) + payload)
        else:
            output.cancel()
        await asyncio.gather(output, incoming, return_exceptions=True)
    finally:
        await run_in_threadpool(session.close)
        transport.close()
        old.connection_lost(None)  # let the server forget the connection (graceful shutdown waits for it)


async def _raw_output(loop, session, transport):
    while True:
        data = await loop.sock_recv(session.sock, CHUNK)
        if not data:
            return
        transport.write(data)
        while transport.get_write_buffer_size() > 4 * CHUNK and not transport.is_closing():
            await asyncio.sleep(0.01)  # the client reads slowly: stop reading the engine meanwhile


async def _raw_input(loop, session, client):
    buffer = b""
    while True:
        data = await client.get()
        if data is None:
            return  # the client is gone
        if data == b"":
            session.close_stdin()  # half-close: the output is still wanted
            continue
        if session.tty:
            await loop.sock_sendall(session.sock, data)
            continue
        buffer += data
        while len(buffer) >= 4:
            length = struct.unpack(">I", buffer[:4])[0]
            if length == 0:
                session.close_stdin()
                buffer = buffer[4:]
                continue
            if len(buffer) < 4 + length:
                break
            await loop.sock_sendall(session.sock, buffer[4:4 + length])
            buffer = buffer[4 + length:]
