"""Trying an outgoing relay before its settings are saved: connect, TLS (implicit on port 465,
STARTTLS when the server offers it or the settings ask for it), AUTH. A refusal comes back as
MailServerError carrying the relay's own reply."""
import smtplib
import socket
import ssl

from mail_server.errors import MailServerError
from mail_server.maps import NO_AUTH_RELAYS

TIMEOUT = 15


def _context(relay: dict) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if relay.get("acceptSelfSignedCerts"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _reply(e: smtplib.SMTPResponseException) -> str:
    text = e.smtp_error.decode(errors="replace") if isinstance(e.smtp_error, bytes) else str(e.smtp_error)
    return f"{e.smtp_code} {text}"


def _login(client: smtplib.SMTP, user: str, password: str) -> None:
    """One AUTH attempt with the best mechanism offered (smtplib's login() would try the next
    mechanism after a refusal and report the last failure instead of the relay's answer)."""
    offered = (client.esmtp_features.get("auth") or "").upper().split()
    for mechanism, method in (("PLAIN", client.auth_plain), ("LOGIN", client.auth_login),
                              ("CRAM-MD5", client.auth_cram_md5)):
        if mechanism in offered:
            client.user, client.password = user, password
            client.auth(mechanism, method, initial_response_ok=mechanism != "LOGIN")
            return
    raise MailServerError("relay offers no login mechanism Berth speaks (PLAIN, LOGIN, CRAM-MD5): "
                          + (" ".join(offered) or "no AUTH at all"))


def test_relay(relay: dict) -> None:
    host, port = str(relay.get("host") or ""), int(relay.get("port") or 587)
    if not host:
        raise MailServerError("relay: no host")
    where = f"{host}:{port}"
    try:
        if port == 465:
            client = smtplib.SMTP_SSL(host, port, timeout=TIMEOUT, context=_context(relay))
        else:
            client = smtplib.SMTP(host, port, timeout=TIMEOUT)
        with client:
            client.ehlo()
            if port != 465 and (client.has_extn("starttls") or relay.get("tls")):
                client.starttls(context=_context(relay))
                client.ehlo()
            if relay.get("provider") not in NO_AUTH_RELAYS and relay.get("username"):
                _login(client, str(relay["username"]), str(relay.get("password") or ""))
    except smtplib.SMTPResponseException as e:
        raise MailServerError(f"relay {where} refused: {_reply(e)}") from None
    except smtplib.SMTPNotSupportedError as e:
        raise MailServerError(f"relay {where}: {e}") from None
    except smtplib.SMTPException as e:
        raise MailServerError(f"relay {where}: {e}") from None
    except ssl.SSLError as e:
        raise MailServerError(f"relay {where}: TLS failed: {e.reason or e}") from None
    except (OSError, socket.timeout) as e:
        raise MailServerError(f"relay {where} unreachable: {e.strerror or e}") from None
