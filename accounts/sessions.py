"""Activation, login/logout and the credentials a user holds: API tokens and app passwords."""
import secrets
import time
import uuid

import peewee

import accounts
import eventlog
from core import config
from accounts import passwords
from accounts import login_throttle
from web.security import hash_secret
from core.errors import BadRequest, Conflict, NotFound, Unauthorized
from models import AppPassword, Setting, Token, User, database, utcnow


def _issue_token(user, name, client_id, expires_ms, scope=None):
    secret = secrets.token_hex(32)
    token = Token.create(id=f"tid-{uuid.uuid4()}", token_hash=hash_secret(secret), user=user,
                         name=name, client_id=client_id, expires=expires_ms,
                         scope=scope or {"*": "rw"})
    return token, secret


def _session_expiry_ms():
    return int((time.time() + config.get().token_ttl_secs) * 1000)


def activate(fields, ip):
    """Create the first owner; refused once any user exists. Returns (user, secret, expires)."""
    with database.atomic():
        # The 'activated' row is the lock: a second concurrent activation fails to insert it.
        try:
            Setting.insert(name="activated", value=True).execute()
        except peewee.IntegrityError:
            raise Conflict("Cloudron is already activated") from None
        if accounts.is_activated():
            raise Conflict("Cloudron is already activated")
        user = accounts.create_user(None, fields, role="owner")
        token, secret = _issue_token(user, "activation", "cid-webadmin", _session_expiry_ms())
    actor = eventlog.Actor(user.id, user.username, user.role, ip)
    eventlog.record("cloudron.activate", actor, userId=user.id, username=user.username)
    return user, secret, token.expires


def login(username, password, ip):
    """Exchange credentials for a session token. Returns (secret, expires_ms)."""
    login_throttle.check(username, ip)
    name = (username or "").strip().lower()
    user = User.get_or_none((User.username == name) | (User.email == name))
    hashed = user.password_hash if user else passwords.DUMMY_HASH
    if not passwords.verify_password(hashed, password) or user is None or not user.active:
        login_throttle.failed(username, ip)
        eventlog.record("user.login_failed", eventlog.Actor(ip=ip), username=name)
        raise Unauthorized("Username or password is wrong")
    login_throttle.succeeded(username)
    user.last_login_time = utcnow()
    user.save()
    token, secret = _issue_token(user, "login", "cid-webadmin", _session_expiry_ms())
    eventlog.record("user.login", eventlog.Actor(user.id, user.username, user.role, ip), userId=user.id)
    return secret, token.expires


def logout(actor, token_id):
    Token.delete().where(Token.id == token_id).execute()
    eventlog.record("user.logout", actor, userId=actor.user_id)


# ---- API tokens -------------------------------------------------------------------------------

def list_tokens(user_id, page, per_page):
    return list(Token.select().where(Token.user == user_id)
                .order_by(Token.creation_time.desc(), Token.id).paginate(page, per_page))


def get_token(user_id, token_id):
    token = Token.get_or_none((Token.id == token_id) & (Token.user == user_id))
    if token is None:
        raise NotFound("No such token")
    return token


def create_token(actor, name, expires_at=None, scope=None):
    """A personal API token. `scope` {"*": "r"} makes it read-only. Returns (token, secret)."""
    now_ms = int(time.time() * 1000)
    if expires_at is None:
        expires_at = now_ms + 100 * 365 * 24 * 3600 * 1000  # API tokens live until revoked
    elif expires_at <= now_ms:
        raise BadRequest("must be in the future", "expiresAt")
    access = (scope or {}).get("*", "rw")
    if access not in ("r", "rw"):
        raise BadRequest("'*' must be 'r' (read-only) or 'rw' (read-write)", "scope")
    token, secret = _issue_token(actor.user_id, name.strip(), "cid-sdk", expires_at, {"*": access})
    eventlog.record("user.token.add", actor, tokenId=token.id, name=token.name, scope=token.scope)
    return token, secret


def delete_token(actor, token_id):
    token = get_token(actor.user_id, token_id)
    token.delete_instance()
    eventlog.record("user.token.remove", actor, tokenId=token.id)


# ---- app passwords ----------------------------------------------------------------------------

def list_app_passwords(user_id, page, per_page):
    return list(AppPassword.select().where(AppPassword.user == user_id)
                .order_by(AppPassword.creation_time.desc(), AppPassword.id).paginate(page, per_page))


def get_app_password(user_id, password_id):
    row = AppPassword.get_or_none((AppPassword.id == password_id) & (AppPassword.user == user_id))
    if row is None:
        raise NotFound("No such app password")
    return row


def create_app_password(actor, name, identifier):
    """Returns (row, secret); the secret is shown once and stored only as a hash."""
    secret = secrets.token_hex(16)
    row = AppPassword.create(id=f"uid-{uuid.uuid4()}", user=actor.user_id, name=name.strip(),
                             identifier=identifier.strip(), password_hash=hash_secret(secret))
    eventlog.record("user.app_password.add", actor, appPasswordId=row.id, name=row.name,
                 identifier=row.identifier)
    return row, secret


def delete_app_password(actor, password_id):
    row = get_app_password(actor.user_id, password_id)
    row.delete_instance()
    eventlog.record("user.app_password.remove", actor, appPasswordId=row.id)


def verify_app_password(username, identifier, secret):
    """True when `secret` is one of the user's app passwords for `identifier` (mail, an app)."""
    user = User.get_or_none(User.username == (username or "").lower())
    if user is None or not user.active:
        return False
    return AppPassword.select().where(
        (AppPassword.user == user) & (AppPassword.identifier == identifier)
        & (AppPassword.password_hash == hash_secret(secret))).exists()
