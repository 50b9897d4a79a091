"""Who is calling, and may they call this operation? The one place access is enforced.

Connexion calls the `token_from_*` functions named by `x-apikeyInfoFunc` in openapi.yaml for
every operation that is not public. Each one resolves the token, then checks the roles the
operation declares in `x-roles`, the token's read-only scope, and the per-token rate budget.
The result (token info) reaches handlers as `token_info` / `user`.
"""
import datetime
import hashlib
import json
import threading
import time

from core.errors import Forbidden, TooManyRequests, Unauthorized
from models import Token, User, database, utcnow

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


# Runs on every request (on the event loop thread): one indexed lookup, as plain SQL because
# building the same query through the ORM costs more than running it.
_LOOKUP_SQL = None


def _lookup_sql():
    global _LOOKUP_SQL
    if _LOOKUP_SQL is None:
        t, u = Token._meta.table_name, User._meta.table_name
        _LOOKUP_SQL = (f'SELECT t.id, t.expires, t.scope, t.client_id, t.last_used_time, u.id, u.role, '
                       f'u.username, u.active FROM "{t}" t JOIN "{u}" u ON u.id = t.user_id '
                       f'WHERE t.token_hash = {database.param}')
    return _LOOKUP_SQL


def lookup(token):
    """Token info for a live token, or raise Unauthorized."""
    row = database.execute_sql(_lookup_sql(), (hash_secret(token),)).fetchone()
    if row is None:
        raise Unauthorized("Invalid token")
    token_id, expires, scope, client_id, last_used, user_id, role, username, active = row
    if expires <= time.time() * 1000:
        raise Unauthorized("Token expired")
    if not active:
        raise Unauthorized("User is not active")
    return {"sub": user_id, "token_id": token_id, "role": role, "username": username,
            "scope": json.loads(scope) if scope else {"*": "rw"}, "client_id": client_id,
            "last_used": last_used}


def authorize(token, request):
    info = lookup(token)
    roles, method = _operation_of(request)
    if roles is not None and info["role"] not in roles:
        raise Forbidden(f"Role '{info['role']}' may not call this operation")
    if method not in ("GET", "HEAD") and info["scope"].get("*") == "r":
        raise Forbidden("This token is read-only")
    _charge(info["token_id"])
    _touch(info.pop("last_used"), info["token_id"])
    return info


def _touch(last_used, token_id):
    """Record when a token was last used, at most once a minute (a write per request would cost)."""
    now = utcnow()
    if isinstance(last_used, str):  # SQLite hands back the stored text
        last_used = datetime.datetime.fromisoformat(last_used)
    if last_used is None or (now - last_used).total_seconds() > 60:
        Token.update(last_used_time=now).where(Token.id == token_id).execute()


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
