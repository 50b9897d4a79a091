"""API tokens: issued at login/activation (sessions) or by the user (personal API tokens), looked
up on every request, and revoked when the user's credentials or rights change.

Only the SHA-256 of a secret is stored; the secret is shown once, when the token is issued.
"""
import datetime
import hashlib
import json
import secrets
import time
import uuid

import eventlog
from accounts import directory_config
from core.errors import BadRequest, NotFound, Unauthorized
from models import Setting, Token, User, database, utcnow

TOUCH_EVERY_SECS = 60


def hash_secret(secret: str) -> str:
    """The stored form of a random secret (tokens, app passwords, invite tokens). A plain hash is
    enough: the secrets are 128+ random bits, so there is nothing to brute-force."""
    return hashlib.sha256(secret.encode()).hexdigest()


def issue(user: User | str, name: str, client_id: str, expires_ms: int, scope: dict | None = None) -> tuple:
    """A new token for `user` (a User or its id). Returns (token row, secret)."""
    secret = secrets.token_hex(32)
    token = Token.create(id=f"tid-{uuid.uuid4()}", token_hash=hash_secret(secret), user=user,
                         name=name, client_id=client_id, expires=expires_ms,
                         scope=scope or {"*": "rw"})
    return token, secret


# ---- lookup (every request) -------------------------------------------------------------------

# One indexed lookup, as plain SQL because building the same query through the ORM costs more
# than running it. It runs on the server's event loop (web/security.py): a read of one row by a
# unique index never waits for a writer (SQLite in WAL mode, PostgreSQL's MVCC). The same
# statement reads what the directory policy check needs (accounts.directory_config): the user's
# 2FA state and the stored policy, joined by the setting's primary key. One round trip per
# request instead of two, and the policy is as fresh as the token: a change applies on the next
# request in every worker, with nothing to invalidate.
_LOOKUP_SQL = None


def _lookup_sql():
    global _LOOKUP_SQL
    if _LOOKUP_SQL is None:
        t, u, s = Token._meta.table_name, User._meta.table_name, Setting._meta.table_name
        p = database.param
        _LOOKUP_SQL = (f'SELECT t.id, t.expires, t.scope, t.client_id, t.last_used_time, u.id, u.role, '
                       f'u.username, u.active, u.totp_enabled, s.value FROM "{t}" t '
                       f'JOIN "{u}" u ON u.id = t.user_id LEFT JOIN "{s}" s ON s.name = {p} '
                       f'WHERE t.token_hash = {p}')
    return _LOOKUP_SQL


_SCOPES = {}  # stored scope text -> parsed (a handful of distinct values: {"*": "rw"}, ...)


def _scope_of(text: str | None) -> dict:
    parsed = _SCOPES.get(text)
    if parsed is None:
        parsed = json.loads(text) if text else {"*": "rw"}
        if len(_SCOPES) < 64:
            _SCOPES[text] = parsed
    return dict(parsed)  # callers may change their copy


def lookup(secret: str) -> dict:
    """Token info for a live token, or raise Unauthorized. The role is read from the user row on
    every call, so a role change applies to tokens already issued. Also carries `totp_enabled`
    and `directory_policy` (the stored directory_config text) for directory_config.check_token."""
    row = database.execute_sql(_lookup_sql(), (directory_config.SETTING, hash_secret(secret))).fetchone()
    if row is None:
        raise Unauthorized("Invalid token")
    token_id, expires, scope, client_id, last_used, user_id, role, username, active, totp_on, policy = row
    if expires <= time.time() * 1000:
        raise Unauthorized("Token expired")
    if not active:
        raise Unauthorized("User is not active")
    return {"sub": user_id, "token_id": token_id, "role": role, "username": username,
            "scope": _scope_of(scope), "client_id": client_id,
            "last_used": last_used, "totp_enabled": bool(totp_on), "directory_policy": policy}


def needs_touch(last_used: datetime.datetime | str | None) -> bool:
    """Is the token's last-used time older than a minute? (A write per request would cost.)"""
    if last_used is None:
        return True
    if isinstance(last_used, str):  # SQLite hands back the stored text
        last_used = datetime.datetime.fromisoformat(last_used)
    return (utcnow() - last_used).total_seconds() > TOUCH_EVERY_SECS


# token id -> when this process last claimed its touch (time.monotonic). Bounded by clearing: a
# forgotten claim costs one extra write, nothing more.
_claimed_touches: dict[str, float] = {}
_MAX_CLAIMS = 10_000


def claim_touch(token_id: str, now: float | None = None) -> bool:
    """Should this request write the token's last-used time, when needs_touch said it is due?
    Only the first of the requests a process sees within TOUCH_EVERY_SECS: a burst of requests on
    one token (a client pool; bench/api.py's 16 connections) all saw the same old time and each
    made the same write in its own pool thread. Called on the event loop (one thread)."""
    now = time.monotonic() if now is None else now
    last = _claimed_touches.get(token_id)
    if last is not None and now - last < TOUCH_EVERY_SECS:
        return False
    if len(_claimed_touches) >= _MAX_CLAIMS:
        _claimed_touches.clear()
    _claimed_touches[token_id] = now
    return True


def touch(token_id: str) -> None:
    """Record that the token was used now. A write: with SQLite it may wait for the write lock,
    so web/security.py runs it off the event loop."""
    Token.update(last_used_time=utcnow()).where(Token.id == token_id).execute()


# ---- revocation -------------------------------------------------------------------------------

def revoke_all(user_id: str, keep: str | None = None) -> int:
    """Delete every token of the user (sessions and API tokens) but `keep` (the caller's current
    token on a change the user makes themselves). Takes effect on the next request: tokens are
    looked up in the database each time, nothing caches them. Returns how many were revoked."""
    query = Token.delete().where(Token.user == user_id)
    if keep:
        query = query.where(Token.id != keep)
    return query.execute()


# ---- personal API tokens (the Tokens tag) -----------------------------------------------------

def list_tokens(user_id: str, page: int, per_page: int) -> list:
    return list(Token.select().where(Token.user == user_id)
                .order_by(Token.creation_time.desc(), Token.id).paginate(page, per_page))


def get_token(user_id: str, token_id: str) -> Token:
    """One of the user's own tokens (never another user's: 404)."""
    return Token.get_or_raise(NotFound("No such token"), (Token.id == token_id) & (Token.user == user_id))


def create_token(actor: eventlog.Actor, name: str, expires_at: int | None = None, scope: dict | None = None) -> tuple:
    """A personal API token. `scope` {"*": "r"} makes it read-only; {"metrics": "r"} lets it read
    only GET /metrics (a Prometheus scraper's token). Returns (token, secret)."""
    now_ms = int(time.time() * 1000)
    if expires_at is None:
        expires_at = now_ms + 100 * 365 * 24 * 3600 * 1000  # API tokens live until revoked
    elif expires_at <= now_ms:
        raise BadRequest("must be in the future", "expiresAt")
    token, secret = issue(actor.user_id, name.strip(), "cid-sdk", expires_at, _scope(scope))
    eventlog.record("user.token.add", actor, tokenId=token.id, name=token.name, scope=token.scope)
    return token, secret


def _scope(scope: dict | None) -> dict:
    scope = scope or {}
    if set(scope) == {"metrics"}:
        if scope["metrics"] != "r":
            raise BadRequest("'metrics' can only be 'r' (read)", "scope")
        return {"metrics": "r"}
    access = scope.get("*", "rw")
    if access not in ("r", "rw"):
        raise BadRequest("'*' must be 'r' (read-only) or 'rw' (read-write)", "scope")
    return {"*": access}


def delete_token(actor: eventlog.Actor, token_id: str) -> None:
    token = get_token(actor.user_id, token_id)
    token.delete_instance()
    eventlog.record("user.token.remove", actor, tokenId=token.id)
