"""Who is calling, and may they call this operation? The one place access is enforced.

Connexion calls the `token_from_*` functions named by `x-apikeyInfoFunc` in openapi.yaml for
every operation that is not public. Each one resolves the token (accounts.tokens), then checks
the roles the operation declares in `x-roles`, the token's read-only scope, and the per-token
rate budget. The result (token info) reaches handlers as `token_info` / `user`.

These run on the server's event loop, before the request reaches Flask's thread pool, so nothing
here may wait long. The token lookup stays on the loop: one read of one row by a unique index,
which never waits for a writer (SQLite in WAL mode, PostgreSQL's MVCC) and costs less than a
hand-off to a thread. The last-used stamp is a write (with SQLite it can wait up to the busy
timeout for another writer), so it runs in a worker thread while the loop serves others. There
is no token cache: a revoked token is refused on its next request, in every process.
"""
import threading
import time

from starlette.concurrency import run_in_threadpool

from accounts import tokens
from core.errors import Forbidden, TooManyRequests, Unauthorized

# operationId -> (frozenset of roles, HTTP method); filled by server.create_app from the spec.
OPERATION_ROLES = {}
_rate_limit_per_minute = 0


def configure(operation_roles, rate_limit_per_minute):
    global _rate_limit_per_minute
    OPERATION_ROLES.clear()
    OPERATION_ROLES.update(operation_roles)
    _rate_limit_per_minute = rate_limit_per_minute
    _buckets.clear()


async def token_from_bearer(value, request=None):
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization header must be 'Bearer <token>'")
    return await authorize(token.strip(), request)


async def token_from_query(value, request=None):
    return await authorize(value, request)


async def token_from_api_key(value, request=None):
    return await authorize(value, request)


async def authorize(token, request):
    info = tokens.lookup(token)
    roles, method = _operation_of(request)
    if roles is not None and info["role"] not in roles:
        raise Forbidden(f"Role '{info['role']}' may not call this operation")
    if method not in ("GET", "HEAD") and info["scope"].get("*") == "r":
        raise Forbidden("This token is read-only")
    _charge(info["token_id"])
    if tokens.needs_touch(info.pop("last_used")):
        await run_in_threadpool(tokens.touch, info["token_id"])
    return info


def _operation_of(request):
    if request is None:
        return None, "GET"
    routing = request.scope.get("extensions", {}).get("connexion_routing", {})
    roles, _ = OPERATION_ROLES.get(routing.get("operation_id"), (None, None))
    return roles, request.scope.get("method", "GET")


# Per-token token bucket: capacity = one minute of budget, refilled continuously. Kept in
# process memory: each worker enforces the budget for the requests it serves.
_buckets = {}
_buckets_lock = threading.Lock()


def _charge(token_id):
    budget = _rate_limit_per_minute
    if budget <= 0:
        return
    now = time.monotonic()
    with _buckets_lock:
        level, last = _buckets.get(token_id, (float(budget), now))
        level = min(float(budget), level + (now - last) * budget / 60.0)
        if level < 1.0:
            _buckets[token_id] = (level, now)
            raise TooManyRequests("API rate limit exceeded for this token",
                                  retry_after=(1.0 - level) * 60.0 / budget)
        _buckets[token_id] = (level - 1.0, now)
