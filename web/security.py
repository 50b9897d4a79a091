"""Who is calling, and may they call this operation? The one place access is enforced.

Connexion calls the `token_from_*` functions named by `x-apikeyInfoFunc` in openapi.yaml for
every operation that is not public. Each one resolves the token (accounts.tokens), then checks
the roles the operation declares in `x-roles`, the token's read-only scope, and the per-token
rate budget. The result (token info) reaches handlers as `token_info` / `user`.

These run on the server's event loop, before the request reaches Flask's thread pool, so nothing
here may wait long. The token lookup stays on the loop: one read of one row by a unique index,
which never waits for a writer (SQLite in WAL mode, PostgreSQL's MVCC) and costs less than a
hand-off to a thread. The same query reads the user's 2FA state and the directory policy
(mandatory2FA), so that check costs no read of its own. The last-used stamp is a write (with
SQLite it can wait up to the busy timeout for another writer), so it runs in a worker thread
while the loop serves others. There is no token cache: a revoked token is refused on its next
request, in every process. The rate budget is shared by every worker of the server
(web.rate_limit), so it is exact whatever BERTH_WORKERS is.
"""
import hmac
import inspect

from starlette.concurrency import run_in_threadpool

from accounts import directory_config, tokens
from core.errors import Forbidden, TooManyRequests, Unauthorized
from models import ROLE_RANK
from web import rate_limit

# operationId -> (frozenset of roles, HTTP method); filled by server.create_app from the spec.
OPERATION_ROLES = {}
# operationId -> the narrow token scope (`x-token-scope`) that may also call it, e.g. "metrics".
OPERATION_SCOPES = {}
_rate_limit_per_minute = 0
_metrics_secret = ""
_buckets = rate_limit.LocalBuckets()


def configure(operation_roles, rate_limit_per_minute, operation_scopes=None, metrics_secret="",
              rate_limit_file=None):
    """`rate_limit_file`: the file every worker of the server shares the budget through
    (data_paths.rate_limit_file); without it the budget is counted in this process only."""
    global _rate_limit_per_minute, _metrics_secret, _buckets
    OPERATION_ROLES.clear()
    OPERATION_ROLES.update(operation_roles)
    OPERATION_SCOPES.clear()
    OPERATION_SCOPES.update(operation_scopes or {})
    _rate_limit_per_minute = rate_limit_per_minute
    _metrics_secret = metrics_secret
    _buckets = rate_limit.SharedBuckets(rate_limit_file) if rate_limit_file else rate_limit.LocalBuckets()


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
    op_id = _operation_id(request)
    narrow = OPERATION_SCOPES.get(op_id)
    if narrow == "metrics" and _metrics_secret and hmac.compare_digest(token.encode(), _metrics_secret.encode()):
        return {"sub": None, "token_id": "metrics-secret", "role": "metrics", "username": None,
                "scope": {"metrics": "r"}, "client_id": "metrics"}
    info = tokens.lookup(token)
    stored_policy, totp_enabled = info.pop("directory_policy"), info.pop("totp_enabled")
    roles, method = _operation_of(request)
    if roles is not None and info["role"] not in roles:
        raise Forbidden(f"Role '{info['role']}' may not call this operation (it needs one of: "
                        f"{', '.join(sorted(roles, key=ROLE_RANK.get))})")
    if "*" not in info["scope"] and narrow not in info["scope"]:
        raise Forbidden(f"This token's scope ({', '.join(sorted(info['scope']))}) does not cover this operation")
    if method not in ("GET", "HEAD") and info["scope"].get("*", "r") == "r":
        raise Forbidden("This token is read-only")
    # mandatory2FA: a user without 2FA may call only the set-up routes (read by the lookup).
    directory_config.check_token(stored_policy, totp_enabled, op_id)
    _charge(info["token_id"])
    if tokens.needs_touch(info.pop("last_used")) and tokens.claim_touch(info["token_id"]):
        await run_in_threadpool(tokens.touch, info["token_id"])
    return info


# Connexion inspects the signature of these functions on every request (does it take `request`,
# `required_scopes`?); a signature stored on the function is returned at once instead of being
# rebuilt from the code object each time.
for _func in (token_from_bearer, token_from_query, token_from_api_key):
    _func.__signature__ = inspect.signature(_func)


def _operation_id(request):
    if request is None:
        return None
    return request.scope.get("extensions", {}).get("connexion_routing", {}).get("operation_id")


def _operation_of(request):
    if request is None:
        return None, "GET"
    roles, _ = OPERATION_ROLES.get(_operation_id(request), (None, None))
    return roles, request.scope.get("method", "GET")


def _charge(token_id):
    """Per-token token bucket: capacity = one minute of budget, refilled continuously."""
    budget = _rate_limit_per_minute
    if budget <= 0:
        return
    wait = _buckets.charge(token_id, budget)
    if wait is not None:
        raise TooManyRequests("API rate limit exceeded for this token", retry_after=wait)
