"""Self-service password reset requests (POST /cloudron/password_reset_request, public).

The answer never tells whether the identifier names a user: the caller gets the same 202 for a
known user, an unknown name and an inactive account, as Cloudron answers. The reset mail is sent
by the mail layer (accounts sits below it): it passes `deliver(user, secret)`; a mail that cannot
go out is not the caller's business either, so the request is recorded in the event log with the
user it matched (null for none) and whether the mail went, so admins can see such requests.
"""
import secrets
from collections.abc import Callable

import eventlog
from accounts.tokens import hash_secret
from core.errors import ApiError, BadRequest
from models import User


def request(identifier: str | None, ip: str | None,
            deliver: Callable[[User, str], None] | None = None) -> None:
    """Record a reset request for the user named by `identifier` (username or email) and, for an
    active local user, mail a new reset secret through `deliver` (its hash replaces the previous
    invite or reset secret only once the mail went out)."""
    if not isinstance(identifier, str) or not identifier.strip():
        raise BadRequest("must be a username or an email address", "identifier")
    name = identifier.strip().lower()
    user = User.get_or_none((User.username == name) | (User.email == name))
    matched = user.id if user is not None and user.active else None
    sent, error = False, None
    if matched and deliver is not None and not user.source:
        secret = secrets.token_hex(32)
        try:
            deliver(user, secret)
            sent = True
        except ApiError as e:
            error = e.message
        if sent:
            user.invite_token_hash = hash_secret(secret)
            user.save()
    eventlog.record("user.password_reset_request", eventlog.Actor(ip=ip), identifier=name[:254],
                    userId=matched, mailSent=sent, **({"mailError": error} if error else {}))
