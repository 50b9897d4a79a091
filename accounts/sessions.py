"""Activation, login and logout: where dashboard sessions (tokens of client cid-webadmin) begin
and end. The tokens themselves are accounts.tokens."""
import time

import eventlog
from accounts import activation_lock, external_ldap, login_throttle, passwords, tokens, totp, users
from core import config
from core.errors import Conflict, Unauthorized
from models import Token, User, database, utcnow


def _session_expiry_ms():
    return int((time.time() + config.get().token_ttl_secs) * 1000)


def activate(fields: dict, ip: str | None) -> tuple:
    """Create the first owner; refused once any user exists. Returns (user, secret, expires)."""
    with database.atomic():
        # A second concurrent activation (or a restore) fails to take the lock.
        activation_lock.acquire()
        if users.is_activated():
            raise Conflict("Cloudron is already activated")
        user = users.create_user(None, fields, role="owner")
        token, secret = tokens.issue(user, "activation", "cid-webadmin", _session_expiry_ms())
    actor = eventlog.Actor(user.id, user.username, user.role, ip)
    eventlog.record("cloudron.activate", actor, userId=user.id, username=user.username)
    return user, secret, token.expires


def login(username: str | None, password: str | None, ip: str | None, totp_token: str | None = None) -> tuple:
    """Exchange credentials (and the TOTP code when the user has 2FA on) for a session token.
    Returns (secret, expires_ms). A missing, wrong or reused code counts as a failed login.

    The name is resolved first, so the per-user throttle counts attempts against the account,
    however it was named (padded, upper case, or by email), not against the string sent."""
    name = (username or "").strip().lower()
    user = User.get_or_none((User.username == name) | (User.email == name)) if name else None
    subject = login_throttle.subject(user.id if user else None, name)
    login_throttle.check(subject, ip)
    if user is None:  # with autoCreate, a name the external directory accepts becomes a user
        user = external_ldap.auto_create(name, password)
    hashed = user.password_hash if user else passwords.DUMMY_HASH
    if not external_ldap.check_password(user, hashed, password) or user is None or not user.active:
        login_throttle.failed(subject, ip)
        eventlog.record("user.login_failed", eventlog.Actor(ip=ip), username=name)
        raise Unauthorized("Username or password is wrong")
    try:
        totp.verify_login(user, totp_token)
    except Unauthorized:
        login_throttle.failed(subject, ip)
        eventlog.record("user.login_failed", eventlog.Actor(ip=ip), username=name, reason="totp")
        raise
    login_throttle.succeeded(subject)
    user.last_login_time = utcnow()
    user.save(only=[User.last_login_time])  # not the whole row: the 2FA step claimed above stays
    token, secret = tokens.issue(user, "login", "cid-webadmin", _session_expiry_ms())
    eventlog.record("user.login", eventlog.Actor(user.id, user.username, user.role, ip), userId=user.id)
    return secret, token.expires


def logout(actor: eventlog.Actor, token_id: str) -> None:
    Token.delete().where(Token.id == token_id).execute()
    eventlog.record("user.logout", actor, userId=actor.user_id)
