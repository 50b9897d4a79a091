"""How a request reaches Flask from the ASGI server: in a worker thread (a2wsgi), or, for a few
short read-only operations, right on the event loop.

Why: a2wsgi runs every Flask request in its thread pool and hands each response message back to
the loop separately (start, body, end: three cross-thread round trips). Profiled with
bench/api.py, that hop and the GIL hand-offs around it (the loop thread and the pool thread take
turns at the GIL, and one waiting for it waits up to the switch interval) cost more than the
handler of `GET /users` itself. The operations of INLINE_OPERATIONS are reads of a bounded page
by indexes, about as short as the token lookup web.security already does on the loop for
every request; they run on the loop thread with no hand-off at all. Everything else (writes,
which may wait for SQLite's write lock; uploads; anything that calls out) keeps the pool, so
the loop is never held for long.

An inline request is the same Flask call a2wsgi makes: the same WSGI environ (a2wsgi's
build_environ), the contextvars of the request (Connexion's context) in a copy, exceptions
propagating to Connexion's handlers, and the response sent as one start and one body message.
"""
import contextvars
import io

from a2wsgi import WSGIMiddleware
from a2wsgi.wsgi import build_environ

# Short, read-only GET operations: a bounded page or one row, read by indexes. The status route
# is the one every client polls: with thousands of log stream clients on the loop, its three
# hand-offs between the loop and a pool thread each waited behind the loop's queue of deliveries
# (bench/streams.py: status p99 0.3-0.6 s).
INLINE_OPERATIONS = frozenset({
    "handlers.users.list_users",
    "handlers.users.get_user",
    "handlers.cloudron.get_status",
})
_INLINE_METHODS = ("GET", "HEAD")


class WsgiBridge:
    """ASGI app serving Flask's WSGI app: inline for INLINE_OPERATIONS, else a2wsgi's pool."""

    def __init__(self, wsgi_app, workers: int, inline_operations=INLINE_OPERATIONS):
        self.pool = WSGIMiddleware(wsgi_app, workers=workers)
        self.app = wsgi_app
        self.inline = frozenset(inline_operations)

    @property
    def app(self):  # FlaskApp.add_wsgi_middleware wraps the WSGI app through this attribute
        return self._wsgi_app

    @app.setter
    def app(self, wsgi_app):
        self._wsgi_app = wsgi_app
        self.pool.app = _terminated_input(wsgi_app)

    async def __call__(self, scope, receive, send):
        if (scope["type"] != "http" or scope["method"] not in _INLINE_METHODS
                or _operation_id(scope) not in self.inline):
            return await self.pool(scope, receive, send)
        body = b""
        while True:  # a GET has at most a small body; read it all before calling Flask
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        environ = build_environ(scope, io.BytesIO(body))
        status, headers, chunks = contextvars.copy_context().run(_call, self.pool.app, environ)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"".join(chunks)})


def _terminated_input(wsgi_app):
    """The body stream Flask gets here ends where the request body ends, also for a chunked body
    (no Content-Length; the ASGI server has taken the chunks apart). Werkzeug reads a body
    without Content-Length as empty unless the server says so: multipart uploads sent chunked
    arrived without their file. Body size is still capped (web.request_limits counts chunks)."""
    def with_terminated_input(environ, start_response):
        environ["wsgi.input_terminated"] = True
        return wsgi_app(environ, start_response)
    return with_terminated_input


def _operation_id(scope):
    return ((scope.get("extensions") or {}).get("connexion_routing") or {}).get("operation_id")


def _call(wsgi_app, environ):
    """Run the WSGI app to the end: (status code, ASGI headers, body chunks)."""
    started = []
    chunks = []

    def start_response(status, response_headers, exc_info=None):
        if exc_info is not None and started:
            raise exc_info[1].with_traceback(exc_info[2])
        started[:] = [int(status.split(" ", 1)[0]),
                      [(name.strip().encode("latin1").lower(), value.strip().encode("latin1"))
                       for name, value in response_headers]]
        return chunks.append

    iterable = wsgi_app(environ, start_response)
    try:
        chunks.extend(iterable)
    finally:
        close = getattr(iterable, "close", None)
        if close is not None:
            close()
    return started[0], started[1], chunks
