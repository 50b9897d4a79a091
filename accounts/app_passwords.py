"""App passwords: per-app (or mail) secrets a user creates so the account password is never
typed into a mail client or app. Stored as SHA-256 hashes; the secret is shown once."""
import secrets
import uuid

import eventlog
from accounts.tokens import hash_secret
from core.errors import NotFound
from models import AppPassword, User


def list_app_passwords(user_id: str, page: int, per_page: int) -> list:
    return list(AppPassword.select().where(AppPassword.user == user_id)
                .order_by(AppPassword.creation_time.desc(), AppPassword.id).paginate(page, per_page))


def get_app_password(user_id: str, password_id: str) -> AppPassword:
    """One of the user's own app passwords (never another user's: 404)."""
    return AppPassword.get_or_raise(NotFound("No such app password"),
                                    (AppPassword.id == password_id) & (AppPassword.user == user_id))


def create_app_password(actor: eventlog.Actor, name: str, identifier: str) -> tuple:
    """Returns (row, secret); the secret is shown once and stored only as a hash."""
    secret = secrets.token_hex(16)
    row = AppPassword.create(id=f"uid-{uuid.uuid4()}", user=actor.user_id, name=name.strip(),
                             identifier=identifier.strip(), password_hash=hash_secret(secret))
    eventlog.record("user.app_password.add", actor, appPasswordId=row.id, name=row.name,
                    identifier=row.identifier)
    return row, secret


def delete_app_password(actor: eventlog.Actor, password_id: str) -> None:
    row = get_app_password(actor.user_id, password_id)
    row.delete_instance()
    eventlog.record("user.app_password.remove", actor, appPasswordId=row.id)


def revoke_all(user_id: str) -> int:
    """Delete every app password of the user (an admin password reset: whoever knew the old
    password may have created some). Returns how many were revoked."""
    return AppPassword.delete().where(AppPassword.user == user_id).execute()


def verify_app_password(username: str, identifier: str, secret: str) -> bool:
    """True when `secret` is one of the user's app passwords for `identifier` (mail, an app)."""
    user = User.get_or_none(User.username == (username or "").lower())
    if user is None or not user.active:
        return False
    return AppPassword.select().where(
        (AppPassword.user == user) & (AppPassword.identifier == identifier)
        & (AppPassword.password_hash == hash_secret(secret))).exists()
