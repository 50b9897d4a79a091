"""Who is calling, and may they call this operation? The one place access is enforced.

Connexion calls the `token_from_*` functions named by `x-apikeyInfoFunc` in openapi.yaml for
every operation that is not public. Each one resolves the token, then checks the roles the
operation declares in `x-roles`, the token's read-only scope, and the per-token rate budget.
The result (token info) reaches handlers as `token_info` / `user`.
"""
import hashlib
import threading
import time

from errors import Forbidden, TooManyRequests, Unauthorized
from models import Token, User, utcnow

# operationId -> (frozenset of roles, HTTP method); filled by server.create_app from the spec.
OPERATION_ROLES = {}
_rate_limit_per_minute = 0


def configure(operation_roles, rate_limit_per_minute):
    global _rate_limit_per_minute
    OPERATION_ROLES.clear()
    OPERATION_ROLES.update(operation_roles)
    _rate_limit_per_minute = rate_limit_per_minute
    _buckets.clear()


def hash_secret(secret):
    return hashlib.sha256(secret.encode()).hexdigest()


def token_from_bearer(value, request=None):
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization header must be 'Bearer <token>'")
    return authorize(token.strip(), request)


def token_from_query(value, request=None):
    return authorize(value, request)


def token_from_api_key(value, request=None):
    return authorize(value, request)


def lookup(token):
    """(Token, User) for a live token, or raise Unauthorized."""
    row = (Token.select(Token, User).join(User)
           .where(Token.token_hash == hash_secret(token)).first())
    if row is None:
        raise Unauthorized("Invalid token")
    if row.expires <= time.time() * 1000:
        raise Unauthorized("Token expired")
    if not row.user.active:
        raise Unauthorized("User is not active")
    return row


def authorize(token, request):
    row = lookup(token)
    user = row.user
    roles, method = _operation_of(request)
    if roles is not None and user.role not in roles:
        raise Forbidden(f"Role '{user.role}' may not call this operation")
    if method not in ("GET", "HEAD") and (row.scope or {}).get("*") == "r":
        raise Forbidden("This token is read-only")
    _charge(row.id)
    _touch(row)
    return {"sub": user.id, "token_id": row.id, "role": user.role, "username": user.username,
            "scope": row.scope, "client_id": row.client_id}


def _touch(row):
    """Record when a token was last used, at most once a minute (a write per request would cost)."""
    now = utcnow()
    if row.last_used_time is None or (now - row.last_used_time).total_seconds() > 60:
        Token.update(last_used_time=now).where(Token.id == row.id).execute()


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
