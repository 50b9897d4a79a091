"""The mail Berth writes itself: test mail, invites, password resets and notifications to admins.

accounts sits below mail and cannot send, so the accounts functions take a `deliver` callback and
these functions pass it (the handlers call them here). The password reset mail is sent from a
background thread: the public request must take the same time whether or not the identifier names
a user, so a mail that fails is recorded in the event log, never in the answer.
"""
import logging
import threading

import domains
import eventlog
from accounts import emails, reset_requests, users
from core.errors import ApiError, DependencyFailed
from mail import outgoing, settings
from models import User, database

log = logging.getLogger(__name__)


def _dashboard_url(path: str) -> str:
    host = domains.dashboard.admin_fqdn()
    return f"https://{host}{path}" if host else path


def send_test_mail(actor: eventlog.Actor, domain: str, to: object) -> None:
    """POST /mail/{domain}/send_test_mail: one message from no-reply@<domain> (424 with the words
    of whatever refused it)."""
    md = settings.get_settings(domain)
    address = emails.check(to, "to")
    outgoing.send(address, "Test mail from Berth",
                  f"This is a test mail from no-reply@{md.domain_id}.\n\nIf you read this, mail from "
                  f"{md.domain_id} works.\n", domain=md.domain_id)
    eventlog.record("mail.test_mail", actor, domain=md.domain_id, to=address)


def _invite_mail(user: User, address: str, secret: str) -> None:
    link = _dashboard_url(f"/setup-account?inviteToken={secret}&email={address}")
    name = user.display_name or user.username or address
    outgoing.send(address, "You are invited to Berth",
                  f"Hello {name},\n\nyou have been invited. Set up your account here:\n\n{link}\n\n"
                  "The link works once; a newer invite replaces it.\n")


def send_invite(actor: eventlog.Actor, user_id: str, email: str | None = None) -> None:
    """POST /users/{id}/send_invite (and send_invite_email): the invite goes out by mail."""
    users.send_invite(actor, user_id, email, deliver=_invite_mail)


def _reset_in_background(user: User, secret: str) -> None:
    """Check now that mail can go out at all (DependencyFailed: recorded, the secret is not
    replaced), then send from a thread."""
    address = user.fallback_email or user.email
    link = _dashboard_url(f"/passwordreset.html?resetToken={secret}")
    domain = outgoing.sender_domain()
    if domain is None:
        raise DependencyFailed("Cannot send mail: no domain is set up yet")
    outgoing.route(domain)

    def send() -> None:
        try:
            outgoing.send(address, "Password reset",
                          f"Hello {user.display_name or user.username or address},\n\nsomeone (hopefully you) "
                          f"asked to reset your password. Set a new one here:\n\n{link}\n\n"
                          "If it was not you, ignore this mail: your password stays as it is.\n")
        except ApiError as e:
            eventlog.record("user.password_reset_mail", eventlog.SYSTEM, userId=user.id, mailError=e.message)
        except Exception:  # noqa: BLE001 - a background thread: log, never lose the reason
            log.exception("password reset mail to user %s failed", user.id)
        finally:
            if not database.is_closed():
                database.close()  # this thread's own connection

    threading.Thread(target=send, name="password-reset-mail", daemon=True).start()


def request_password_reset(identifier: str | None, ip: str | None) -> None:
    """POST /cloudron/password_reset_request: same answer for every identifier (see accounts)."""
    reset_requests.request(identifier, ip, deliver=_reset_in_background)


def notify_admins(title: str, message: str) -> None:
    """Mail a notification (a failed backup, ...) to every active owner and admin. Best effort: a
    notification that cannot be mailed is still in the dashboard, so failures are only logged."""
    admins = User.select().where(User.role.in_(("owner", "admin")) & (User.active == True))  # noqa: E712
    for admin in admins:
        try:
            outgoing.send(admin.fallback_email or admin.email, f"[Berth] {title}", f"{message}\n")
        except ApiError as e:
            log.warning("notification mail to %s not sent: %s", admin.id, e.message)
            return  # the same route fails for every admin
