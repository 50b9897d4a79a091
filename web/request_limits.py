"""How big a request body may be: BERTH_MAX_BODY_BYTES (default 4 MiB) for every operation, or
what the operation declares with `x-max-body-bytes` in openapi.yaml (upload routes).

Why here, as an ASGI middleware right after routing: request validation reads and parses the
whole body before any handler runs, also for public operations (`/cloudron/login`), so an
unbounded body costs the worker several times its size in memory. A `Content-Length` over the
limit is refused before a byte of the body is read; a body without one (chunked) is counted
while it is read and refused as soon as it passes the limit. Both answer 413 in the one error
format.
"""
from starlette.datastructures import Headers

from core.errors import ApiError, BadRequest


class PayloadTooLarge(ApiError):
    status = 413


class BodyLimitMiddleware:
    """Refuses request bodies over the limit of their operation with 413."""

    def __init__(self, app, default: int, limits: dict[str, int] | None = None):
        self.app = app
        self.default = default
        self.limits = limits or {}  # operation id -> its larger limit

    def _limit(self, scope) -> int:
        routing = (scope.get("extensions") or {}).get("connexion_routing") or {}
        return max(self.default, self.limits.get(routing.get("operation_id"), 0))

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self._limit(scope)
        length = Headers(scope=scope).get("content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                raise BadRequest("is not a number", "Content-Length") from None
            if declared > limit:
                raise _too_large(limit)
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _too_large(limit)
            return message
        await self.app(scope, counted, send)


def _too_large(limit):
    return PayloadTooLarge(f"The request body is larger than {limit} bytes, the most this operation accepts")


def operation_limits(operations) -> dict[str, int]:
    """{operation id: bytes} of the operations that declare `x-max-body-bytes`, from
    web.spec.operations(spec)."""
    return {op_id: int(op["x-max-body-bytes"]) for op_id, _, _, op in operations
            if op.get("x-max-body-bytes")}
