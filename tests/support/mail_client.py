"""A mail client for the tests of Berth's mail server: send over SMTP, log in over IMAP (STARTTLS)
and wait until a message shows up in an inbox.

The server's certificate is self-signed for a test zone: TLS is used but not verified.
"""
import email.message
import imaplib
import smtplib
import ssl
import time
import uuid


def tls() -> ssl.SSLContext:
    """A client context that accepts the test server's self-signed certificate."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


def send(port, sender, rcpt, subject=None, content="hello\n", host="127.0.0.1"):
    """Mail from `sender` to `rcpt` through the SMTP port (no login); the subject sent."""
    subject = subject or f"test {uuid.uuid4().hex[:8]}"
    msg = email.message.EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, rcpt, subject
    msg.set_content(content)
    with smtplib.SMTP(host, int(port), timeout=20) as smtp:
        smtp.send_message(msg)
    return subject


def imap_login(host, port, login, password) -> imaplib.IMAP4:
    """A logged-in IMAP session (STARTTLS first); IMAP4.error when the login is refused."""
    imap = imaplib.IMAP4(host, int(port), timeout=20)
    imap.starttls(tls())
    imap.login(login, password)
    return imap


def wait_in_inbox(host, port, login, password, subject, timeout=90) -> bool:
    """True once a message with `subject` is in the INBOX of `login`; fails the test after `timeout` s.
    90 s: the first message through a freshly started rspamd took over 30 s once, with the suite's
    two workers busy on 2 cores (a wait for a real daemon, not a speed check)."""
    deadline = time.monotonic() + timeout
    while True:
        imap = imap_login(host, port, login, password)
        try:
            imap.select("INBOX")
            _, found = imap.search(None, "SUBJECT", f'"{subject}"')
            if found[0].split():
                return True
        finally:
            imap.logout()
        assert time.monotonic() < deadline, f"{subject} did not arrive for {login}"
        time.sleep(0.3)
