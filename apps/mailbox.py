"""configure/mailbox: the address an app's sendmail and recvmail addons use (Cloudron's
mailboxName, with the later mailboxDomain). The address is checked and stored at once (mail.app_mail:
400 naming the field, 404 for an unknown domain, 409 when it is someone else's), then a configure
task re-creates the container, which gives the app the new CLOUDRON_MAIL_* variables."""
import apps
import eventlog
from core.errors import Conflict
from mail import app_mail


def set_mailbox(actor: eventlog.Actor, app_id: str, body: dict | None) -> int:
    """Store the app's mail address (None or "" parts: the default) and queue the configure task."""
    body = body or {}
    app = apps.get_app(app_id)
    if app.installation_state == "pending_uninstall":   # apps.configure refuses it too: refuse first
        raise Conflict("App is being uninstalled")
    app_mail.set_mailbox(app, body.get("mailboxName"), body.get("mailboxDomain"))
    return apps.configure(actor, app_id, mailboxName=body.get("mailboxName"), mailboxDomain=body.get("mailboxDomain"))


def address(app: object) -> tuple[str, str]:
    """(mailboxName, mailboxDomain) as the app's details show them: the configured address, else
    the default one (`<location>.app` on the app's domain), as Cloudron shows it."""
    return app_mail.address_of(app)
