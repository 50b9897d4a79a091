"""Counts and times every API request per operationId and status (pure ASGI, no framework).

It sits after Connexion's routing, so the operation is known; a request no operation matched is
counted as `unmatched` (never the raw path: label values must stay a small set). The sample is
recorded just before the last body chunk goes out, so a client that has its answer finds it
counted by its next scrape (recording after the send raced with that scrape); with a Content-Length,
"just before" is the chunk that completes it."""
import time

from metrics import instruments


class RequestMetricsMiddleware:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        state = {"status": 500, "recorded": False}  # 500: what a crash before the response means

        def record():
            if not state["recorded"]:
                state["recorded"] = True
                routing = (scope.get("extensions") or {}).get("connexion_routing") or {}
                operation = routing.get("operation_id") or "unmatched"
                code = str(state["status"])
                instruments.requests_total.labels(operation, scope.get("method", ""), code).inc()
                instruments.request_seconds.labels(operation, code).observe(time.perf_counter() - started)

        async def send_and_note(message):
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                state["left"] = _content_length(message.get("headers") or ())
            elif message["type"] == "http.response.body":
                # The client has its answer once Content-Length bytes went out: a2wsgi sends the
                # whole body with more_body=True and an empty last chunk after, which the client
                # need not wait for (recording only then raced with the client's next scrape).
                if state.get("left") is not None:
                    state["left"] -= len(message.get("body", b""))
                if not message.get("more_body", False) or (state.get("left") is not None and state["left"] <= 0):
                    record()
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            record()  # no final body chunk (the client left, or a crash): counted all the same


def _content_length(headers) -> int | None:
    for name, value in headers:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
