"""Self-service password reset requests (POST /cloudron/password_reset_request, public).

The answer never tells whether the identifier names a user: the caller gets the same 202 for a
known user, an unknown name and an inactive account, as Cloudron answers. Sending the reset mail
arrives with the mail issue (Berth sends no mail yet); until then the request is only recorded in
the event log, with the user it matched (null for none), so admins can see such requests.
"""
import eventlog
from core.errors import BadRequest
from models import User


def request(identifier: str | None, ip: str | None) -> None:
    """Record a reset request for the user named by `identifier` (username or email)."""
    if not isinstance(identifier, str) or not identifier.strip():
        raise BadRequest("must be a username or an email address", "identifier")
    name = identifier.strip().lower()
    user = User.get_or_none((User.username == name) | (User.email == name))
    matched = user.id if user is not None and user.active else None
    eventlog.record("user.password_reset_request", eventlog.Actor(ip=ip), identifier=name[:254],
                    userId=matched, mailSent=False)
