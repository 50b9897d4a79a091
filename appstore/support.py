"""Support: tickets go by mail to the operator's support address; remote support is refused.

The address is BERTH_SUPPORT_EMAIL (core.config `support_email`); without it the ticket form is off.
This module only composes the ticket; it leaves through Berth's outgoing mail (mail.outgoing, a
layer above this one), which the handler calls. Remote support (Cloudron installs its staff's SSH
key into root's authorized_keys) is something Berth never does: the route refuses with 405, the
code Cloudron gives for a support feature the operator switched off.
"""
from core import config
from core.errors import ApiError, BadRequest, DependencyFailed

TICKET_TYPES = ("feedback", "ticket", "app_missing", "app_error", "upgrade_request")
MAX_FIELD = {"subject": 512, "description": 65536}


class FeatureDisabled(ApiError):
    status = 405


def address() -> str:
    return config.get().support_email


def get_config() -> dict:
    """GET /settings/support_config (SupportConfig)."""
    email = address()
    return {"email": email, "remoteSupport": False, "submitTickets": bool(email),
            "ticketFormBody": (f"Tickets are sent by mail to {email}." if email
                               else "No support address is configured (BERTH_SUPPORT_EMAIL).")}


def ticket(body: dict, user_email: str | None, user_name: str | None) -> tuple[str, str, str]:
    """(to, subject, text) of a ticket mail, or BadRequest / DependencyFailed (no address)."""
    to = address()
    if not to:
        raise DependencyFailed("No support address is configured (BERTH_SUPPORT_EMAIL): tickets cannot be sent")
    kind = body.get("type")
    if not isinstance(kind, str) or kind not in TICKET_TYPES:
        raise BadRequest(f"must be one of {', '.join(TICKET_TYPES)}", "type")
    for field in ("subject", "description"):
        if not isinstance(body.get(field), str) or not body[field].strip():
            raise BadRequest("must be a non-empty string", field)
    app_id = body.get("appId")
    if app_id is not None and not isinstance(app_id, str):
        raise BadRequest("must be a string", "appId")
    subject = " ".join(body["subject"].split())   # one line: no header folding tricks
    lines = [f"Type: {kind}", f"From: {user_name or '-'} <{user_email or '-'}>"]
    if body.get("altEmail"):
        lines.append(f"Contact: {body['altEmail']}")
    if app_id:
        lines.append(f"App: {app_id}")
    lines += ["", body["description"]]
    return to, f"[Berth support] {subject}", "\n".join(lines) + "\n"


def remote_support() -> dict:
    return {"enabled": False}


def set_remote_support(enable: bool) -> None:
    """Turning it off is a no-op (it is never on); turning it on is refused."""
    if enable:
        raise FeatureDisabled("Remote support is not available on Berth: it never installs a support SSH key. "
                              "Open a ticket (POST /support/ticket) instead")
