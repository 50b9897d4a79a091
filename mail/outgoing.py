"""Berth's own mail (invites, password resets, test mail, notifications): how it leaves.

Two ways out, in this order:
1. When Berth's mail server runs (a mail domain is enabled), the message is handed to it on its
   SMTP port at 127.0.0.1, where the server trusts local clients (Postfix `mynetworks`) as it trusts
   authenticated users: it DKIM-signs and delivers directly or through the domain's relay. Not the
   submission port: there a login may only send as addresses it owns (MAIL FROM validation), and
   `no-reply@<domain>` is nobody's mailbox, so Berth would need a login of its own whose secret it
   would have to keep; the loopback hand-over needs none.
2. Otherwise, when the sending domain has an external relay, Berth talks to that relay itself
   (smtplib: implicit TLS on 465, else STARTTLS when offered, AUTH when credentials are set).
With neither, or with the relay `noop`, nothing can be sent: DependencyFailed (424) saying why.

TLS: the local server's certificate is whatever the mail host has (often the fallback one), and
the connection never leaves the machine, so it is not verified; a relay's certificate is verified
unless the relay says acceptSelfSignedCerts.
"""
import email.utils
import smtplib
import ssl
from email.message import EmailMessage

import domains
import platform_settings
from core import config
from core.errors import DependencyFailed
from mail import settings, sync
from models import Setting

TIMEOUT_SECS = 20


def sender_domain() -> str | None:
    """The domain Berth's own mail comes from: the dashboard domain, else the first domain."""
    chosen = Setting.read("admin_domain")
    if chosen and domains.find(chosen) is not None:
        return chosen
    first = domains.list_domains()
    return first[0].domain if first else None


def build(to: str, subject: str, text: str, from_domain: str, html: str | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = email.utils.formataddr((platform_settings.get("cloudron_name") or "Berth", f"no-reply@{from_domain}"))
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = email.utils.formatdate(localtime=False)
    msg["Message-ID"] = email.utils.make_msgid(domain=from_domain)
    msg.set_content(text)
    if html:
        msg.add_alternative(html, subtype="html")
    return msg


def _local_server(msg: EmailMessage) -> None:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # loopback; see module docs
    with smtplib.SMTP("127.0.0.1", config.get().mail_smtp_port, timeout=TIMEOUT_SECS) as smtp:
        smtp.ehlo()
        if smtp.has_extn("starttls"):
            smtp.starttls(context=context)
            smtp.ehlo()
        smtp.send_message(msg)


def _relay(msg: EmailMessage, relay: dict) -> None:
    context = ssl.create_default_context()
    if relay.get("acceptSelfSignedCerts"):
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    host, port = relay["host"], int(relay.get("port") or 587)
    if port == 465:
        smtp = smtplib.SMTP_SSL(host, port, timeout=TIMEOUT_SECS, context=context)
    else:
        smtp = smtplib.SMTP(host, port, timeout=TIMEOUT_SECS)
    with smtp:
        smtp.ehlo()
        if port != 465 and smtp.has_extn("starttls"):
            smtp.starttls(context=context)
            smtp.ehlo()
        if relay.get("username"):
            smtp.login(relay["username"], relay.get("password", ""))
        smtp.send_message(msg)


def route(domain: str) -> str:
    """How mail from `domain` leaves now: "server", "relay", or raise DependencyFailed saying why not."""
    relay = settings.get_settings(domain).relay or {}
    if relay.get("provider") == "noop":
        raise DependencyFailed(f"Outgoing mail of {domain} is switched off (relay provider noop)")
    if sync.running():
        return "server"
    if relay.get("provider") in settings.EXTERNAL:
        return "relay"
    raise DependencyFailed("Cannot send mail: outgoing mail is not configured (enable mail on a domain "
                           "or set an SMTP relay)")


def send(to: str, subject: str, text: str, *, domain: str | None = None, html: str | None = None) -> None:
    """Send one message from no-reply@`domain` (default: sender_domain()). DependencyFailed (424)
    when it cannot go out, with the server's or the relay's own words."""
    domain = domain or sender_domain()
    if domain is None:
        raise DependencyFailed("Cannot send mail: no domain is set up yet")
    how = route(domain)
    msg = build(to, subject, text, domain, html)
    try:
        if how == "server":
            _local_server(msg)
        else:
            _relay(msg, settings.get_settings(domain).relay)
    except (smtplib.SMTPException, OSError, ssl.SSLError) as e:
        raise DependencyFailed(f"Sending mail to {to} failed: {_words(e)}") from None


def _words(e: Exception) -> str:
    if isinstance(e, smtplib.SMTPResponseException):
        text = e.smtp_error.decode(errors="replace") if isinstance(e.smtp_error, bytes) else str(e.smtp_error)
        return f"{e.smtp_code} {text}"
    if isinstance(e, smtplib.SMTPRecipientsRefused):
        return "; ".join(f"{rcpt}: {code} {msg.decode(errors='replace')}" for rcpt, (code, msg) in e.recipients.items())
    return str(e) or type(e).__name__
