"""Berth's mail server for real: Postfix, Dovecot and rspamd started by mail_server on private
ports in a temporary data dir, driven over SMTP (smtplib) and IMAP (imaplib), with a local SMTP
sink (aiosmtpd, with AUTH) standing in for an external relay."""
import email
import email.utils
import imaplib
import os
import shutil
import smtplib
import ssl
import sys
import tempfile
import time

import pytest

from support.harness import free_port, require

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKPASSWORD = [sys.executable, os.path.join(HERE, "checkpassword.py")]
RELAY_USER, RELAY_PASSWORD = "relay-user", "relay secret"


def _tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE   # the mail server's self-signed certificate
    return context


class Sink:
    """An SMTP server requiring AUTH, keeping what it receives: the relay of relayed.test."""

    def __init__(self):
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword
        self.messages, self.logins = [], []
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                sink.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content,
                                      session.authenticated))
                return "250 OK"

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == RELAY_USER \
                and auth_data.password.decode() == RELAY_PASSWORD
            sink.logins.append((mechanism, ok))
            return AuthResult(success=ok, handled=False)   # a refusal answers 535

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, authenticator=authenticator,
                                     auth_require_tls=False, auth_required=True)
        self.controller.start()

    def stop(self):
        self.controller.stop()


def snapshot(sink_port: int, **changes) -> dict:
    relay = {"provider": "external-smtp", "host": "127.0.0.1", "port": sink_port, "username": RELAY_USER,
             "password": RELAY_PASSWORD}
    snap = {
        "hostname": "my.example.com",
        "domains": [
            {"domain": "example.com", "enabled": True, "catchAll": [], "mailFromValidation": True,
             "relay": {"provider": "cloudron-smtp"}},
            {"domain": "relayed.test", "enabled": True, "catchAll": [], "mailFromValidation": True, "relay": relay},
            {"domain": "catch.test", "enabled": True, "catchAll": ["carol@example.com"], "mailFromValidation": True,
             "relay": {"provider": "cloudron-smtp"}},
            {"domain": "off.test", "enabled": False, "catchAll": [], "relay": {"provider": "cloudron-smtp"}},
        ],
        "mailboxes": [{"address": a, "active": True} for a in (
            "alice@example.com", "bob@example.com", "carol@example.com", "dave@relayed.test", "known@catch.test")],
        "aliases": [{"address": "info@example.com", "target": "alice@example.com"}],
        "lists": [{"address": "team@example.com", "members": ["alice@example.com", "bob@example.com"],
                   "membersOnly": False},
                  {"address": "staff@example.com", "members": ["alice@example.com", "bob@example.com"],
                   "membersOnly": True}],
        "maxEmailSize": 200_000,
        "spamAcl": {"allowlist": ["friend@trusted.test"], "blocklist": ["*@spammer.test", "evil@bad.test"]},
        "spamCustomConfig": "",
        "authProgram": CHECKPASSWORD,
    }
    snap.update(changes)
    return snap


@pytest.fixture(scope="module")
def mail():
    import mail_server
    from mail_server import processes
    require("postfix, dovecot and rspamd (scripts/system.sh packages run)", processes.available())
    data_dir = tempfile.mkdtemp(prefix="berth-mail-test-")
    os.chmod(data_dir, 0o700)
    sink = Sink()
    server = mail_server.MailServer(data_dir, free_port(), free_port(), free_port(), free_port(),
                                    listen="127.0.0.1", resolver=f"127.0.0.1:{free_port()}")
    server.sink = sink
    server.base = snapshot(sink.port)
    try:
        server.apply(server.base)
        yield server
    finally:
        server.stop()
        sink.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def working(mail):
    """Each test starts from the base configuration."""
    mail.apply(mail.base)
    return mail


def message(sender: str, to: str, subject: str, body: str = "hello\r\n") -> str:
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {email.utils.formatdate()}\r\n"
            f"Message-ID: {email.utils.make_msgid()}\r\n\r\n{body}")


def send(mail, sender: str, recipients: list[str], text: str, source: str | None = None) -> dict:
    """Over port 25; `source` another loopback address than 127.0.0.1, which may relay."""
    with smtplib.SMTP("127.0.0.1", mail.ports["smtp"], timeout=30,
                      source_address=(source, 0) if source else None) as s:
        s.ehlo("client.test")
        return s.sendmail(sender, recipients, text)


def inbound(mail, to: str, subject: str) -> dict:
    """A mail from outside to `to`."""
    return send(mail, "someone@outside.test", [to], message("someone@outside.test", to, subject))


def submit(mail, login: str, password: str, sender: str, recipients: list[str], text: str) -> None:
    with smtplib.SMTP("127.0.0.1", mail.ports["submission"], timeout=30) as s:
        s.ehlo("client.test")
        s.starttls(context=_tls())
        s.ehlo("client.test")
        s.login(login, password)
        s.sendmail(sender, recipients, text)


def subjects(mail, address: str) -> list[str]:
    imap = imaplib.IMAP4_SSL("127.0.0.1", mail.ports["imaps"], ssl_context=_tls(), timeout=30)
    try:
        imap.login(address, "good-" + address)
        imap.select("INBOX", readonly=True)
        _, data = imap.search(None, "ALL")
        found = []
        for num in data[0].split():
            _, parts = imap.fetch(num, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            found.append(email.message_from_bytes(parts[0][1])["Subject"])
        return found
    finally:
        imap.logout()


def wait_for(check, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def unique(label: str) -> str:
    return f"{label} {time.time_ns()}"


def test_mail_to_a_mailbox_is_read_back_over_imap_with_the_owners_password(working):
    subject = unique("to alice")
    assert inbound(working, "alice@example.com", subject) == {}
    assert wait_for(lambda: subject in subjects(working, "alice@example.com"))
    usage = working.maildir_usage()
    assert usage["alice@example.com"] > 0


def test_wrong_password_is_refused_over_imap_and_submission(working):
    imap = imaplib.IMAP4_SSL("127.0.0.1", working.ports["imaps"], ssl_context=_tls(), timeout=30)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        imap.login("alice@example.com", "wrong")
    imap.logout()
    with pytest.raises(smtplib.SMTPAuthenticationError):
        submit(working, "alice@example.com", "wrong", "alice@example.com", ["bob@example.com"],
               message("alice@example.com", "bob@example.com", "nope"))


def test_imap_with_starttls(working):
    # (Dovecot treats 127.0.0.1 as secure, so LOGINDISABLED cannot be seen from here.)
    imap = imaplib.IMAP4("127.0.0.1", working.ports["imap"], timeout=30)
    try:
        assert "STARTTLS" in imap.capabilities
        imap.starttls(ssl_context=_tls())
        assert imap.login("bob@example.com", "good-bob@example.com")[0] == "OK"
    finally:
        imap.logout()


def test_alias_list_and_catch_all_deliver_to_their_mailboxes(working):
    alias, team, caught = unique("alias"), unique("list"), unique("catch-all")
    inbound(working, "info@example.com", alias)
    inbound(working, "team@example.com", team)
    inbound(working, "whoever@catch.test", caught)
    assert wait_for(lambda: {alias, team} <= set(subjects(working, "alice@example.com")))
    assert wait_for(lambda: team in subjects(working, "bob@example.com"))
    assert wait_for(lambda: caught in subjects(working, "carol@example.com"))
    # A real mailbox of the catch-all domain still gets its own mail.
    own = unique("known")
    inbound(working, "known@catch.test", own)
    assert wait_for(lambda: own in subjects(working, "known@catch.test"))
    assert own not in subjects(working, "carol@example.com")


def test_members_only_list_refuses_a_non_member_and_takes_a_member(working):
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(working, "stranger@outside.test", ["staff@example.com"],
             message("stranger@outside.test", "staff@example.com", "let me in"))
    assert refused.value.recipients["staff@example.com"][0] == 554
    subject = unique("staff")
    send(working, "bob@example.com", ["staff@example.com"], message("bob@example.com", "staff@example.com", subject))
    assert wait_for(lambda: subject in subjects(working, "alice@example.com"))


def test_unknown_recipient_is_rejected_at_rcpt_time(working):
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(working, "someone@outside.test", ["nobody@example.com"],
             message("someone@outside.test", "nobody@example.com", "who?"))
    assert refused.value.recipients["nobody@example.com"][0] == 550
    # Neither mail for a disabled domain nor relaying for strangers (127.0.0.2: not this machine's
    # own 127.0.0.1, which may relay Berth's mail).
    for rcpt in ("someone@off.test", "someone@elsewhere.test"):
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            send(working, "someone@outside.test", [rcpt], message("someone@outside.test", rcpt, "relay?"), "127.0.0.2")
        assert refused.value.recipients[rcpt][0] == 554
    events = working.delivery_events(since=time.time() - 60)
    assert any(e["type"] == "rejected" and e["to"] == "nobody@example.com" for e in events)


def test_oversize_mail_is_rejected(working):
    big = message("someone@outside.test", "alice@example.com", "big", ("x" * 76 + "\r\n") * 4000)
    with smtplib.SMTP("127.0.0.1", working.ports["smtp"], timeout=30) as s:
        s.ehlo("client.test")
        assert int(s.esmtp_features["size"]) == 200_000
        # Announced size: refused at MAIL FROM; unannounced: refused after DATA.
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            s.sendmail("someone@outside.test", ["alice@example.com"], big, mail_options=[f"SIZE={len(big)}"])
        assert refused.value.smtp_code == 552
        s.rset()
        s.esmtp_features.pop("size")
        with pytest.raises(smtplib.SMTPDataError) as refused:
            s.sendmail("someone@outside.test", ["alice@example.com"], big)
        assert refused.value.smtp_code == 552


def test_blocklisted_sender_is_refused(working):
    for sender in ("anyone@spammer.test", "evil@bad.test"):
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            send(working, sender, ["alice@example.com"], message(sender, "alice@example.com", "buy"))
        assert refused.value.recipients["alice@example.com"][0] == 554
    ok = message("good@bad.test", "alice@example.com", "ok")
    assert send(working, "good@bad.test", ["alice@example.com"], ok) == {}


def test_outgoing_mail_leaves_through_the_relay_with_a_dkim_signature_that_verifies(working):
    import dkim
    sink = working.sink
    before = len(sink.messages)
    subject = unique("outgoing")
    submit(working, "dave@relayed.test", "good-dave@relayed.test", "dave@relayed.test", ["friend@elsewhere.test"],
           message("dave@relayed.test", "friend@elsewhere.test", subject))
    assert wait_for(lambda: len(sink.messages) > before)
    mail_from, rcpts, content, authenticated = sink.messages[-1]
    assert (mail_from, rcpts, authenticated) == ("dave@relayed.test", ["friend@elsewhere.test"], True)
    assert (b"Subject: " + subject.encode()) in content
    assert b"DKIM-Signature:" in content and b"s=cloudron" in content and b"d=relayed.test" in content
    record = b"v=DKIM1; k=rsa; p=" + working.dkim_public_key("relayed.test").encode()

    def dns(name, timeout=5):
        return record if name == b"cloudron._domainkey.relayed.test." else None
    assert dkim.verify(content, dnsfunc=dns)
    # Tampering breaks it: the signature covers the message.
    assert not dkim.verify(content.replace(subject.encode(), b"changed"), dnsfunc=dns)
    assert any(e["type"] == "delivered" and e["to"] == "friend@elsewhere.test"
               for e in working.delivery_events(since=time.time() - 60))
    # Berth's own mail: handed over on port 25 from this machine, without logging in; signed too.
    before, subject = len(sink.messages), unique("from berth")
    send(working, "no-reply@relayed.test", ["admin@elsewhere.test"],
         message("no-reply@relayed.test", "admin@elsewhere.test", subject))
    assert wait_for(lambda: len(sink.messages) > before)
    assert sink.messages[-1][1] == ["admin@elsewhere.test"] and dkim.verify(sink.messages[-1][2], dnsfunc=dns)


def test_submission_enforces_mail_from_validation(working):
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        submit(working, "bob@example.com", "good-bob@example.com", "alice@example.com", ["carol@example.com"],
               message("alice@example.com", "carol@example.com", "forged"))
    subject = unique("as alias")
    submit(working, "alice@example.com", "good-alice@example.com", "info@example.com", ["carol@example.com"],
           message("info@example.com", "carol@example.com", subject))
    assert wait_for(lambda: subject in subjects(working, "carol@example.com"))


def test_a_configuration_the_checker_refuses_leaves_the_working_one_serving(working):
    import mail_server
    current = os.path.realpath(working.layout.current)
    broken = snapshot(working.sink.port, tls={"certFile": "/nonexistent/cert.pem", "keyFile": "/nonexistent/key.pem"})
    with pytest.raises(mail_server.MailServerError, match="Dovecot refused the configuration.*nonexistent"):
        working.apply(broken)
    assert os.path.realpath(working.layout.current) == current
    assert "nonexistent" in working.status()["error"]
    subject = unique("still serving")
    inbound(working, "bob@example.com", subject)
    assert wait_for(lambda: subject in subjects(working, "bob@example.com"))
    working.apply(working.base)
    assert working.status() == {"running": True, "processes": working.status()["processes"], "error": None}


def test_the_same_snapshot_from_another_process_reloads_nothing(working, monkeypatch):
    """The API server and a task apply the same state with different BERTH_* environments (a task
    has BERTH_DATABASE_URL set): the rendering must not differ, or Dovecot reloads and drops
    Postfix's SASL connection, whose next AUTH then answers 454."""
    logs = working.layout.log_files()
    sizes = {name: os.path.getsize(path) for name, path in logs.items()}
    current = os.path.realpath(working.layout.current)
    monkeypatch.setenv("BERTH_DATABASE_URL", "sqlite:////elsewhere/berth.db")
    monkeypatch.setenv("BERTH_SOMETHING_ELSE", "1")
    working.apply(working.base)
    assert os.path.realpath(working.layout.current) == current
    for name, path in logs.items():
        with open(path, errors="replace") as f:
            f.seek(sizes[name])
            added = f.read()
        assert "reload" not in added.lower() and "SIGHUP" not in added, (name, added)


def test_processes_are_found_again_by_a_new_handle_and_restart(working):
    import mail_server
    again = mail_server.MailServer(working.data_dir, **{f"{k}_port": v for k, v in working.ports.items()},
                                   listen="127.0.0.1")
    before = again.status()
    assert before["running"] and all(p["pid"] for p in before["processes"].values())
    again.restart()
    after = again.status()
    assert after["running"] and after["processes"]["postfix"]["pid"] != before["processes"]["postfix"]["pid"]
    subject = unique("after restart")
    inbound(working, "alice@example.com", subject)
    assert wait_for(lambda: subject in subjects(working, "alice@example.com"))


def test_no_enabled_domain_stops_everything(working):
    off = snapshot(working.sink.port)
    for d in off["domains"]:
        d["enabled"] = False
    working.apply(off)
    status = working.status()
    assert not status["running"] and not any(p["running"] for p in status["processes"].values())
    with pytest.raises(OSError):
        smtplib.SMTP("127.0.0.1", working.ports["smtp"], timeout=5)
    working.apply(working.base)
    assert working.status()["running"]


def test_relay_check_reports_the_relays_own_words(mail):
    import mail_server
    relay = {"provider": "external-smtp", "host": "127.0.0.1", "port": mail.sink.port, "username": RELAY_USER,
             "password": RELAY_PASSWORD}
    mail_server.test_relay(relay)
    with pytest.raises(mail_server.MailServerError, match="535"):
        mail_server.test_relay({**relay, "password": "wrong"})
    with pytest.raises(mail_server.MailServerError, match="unreachable"):
        mail_server.test_relay({**relay, "port": free_port()})


def test_custom_spam_rules_reject_and_the_allow_list_skips_the_filter(working):
    rules = ('header BERTH_TEST_SPAM Subject =~ /berth-spam-marker/\n'
             'describe BERTH_TEST_SPAM Subject carries the test marker\n'
             'score BERTH_TEST_SPAM 30\n')
    working.apply(snapshot(working.sink.port, spamCustomConfig=rules))
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(working, "someone@outside.test", ["alice@example.com"],
             message("someone@outside.test", "alice@example.com", "berth-spam-marker now"))
    assert refused.value.smtp_code == 554
    subject = unique("berth-spam-marker from a friend")
    send(working, "friend@trusted.test", ["alice@example.com"],
         message("friend@trusted.test", "alice@example.com", subject))
    assert wait_for(lambda: subject in subjects(working, "alice@example.com"))
    assert any(e["type"] == "rejected" and "Spam" in (e["detail"] or "")
               for e in working.delivery_events(since=time.time() - 60))


def test_delete_maildir_removes_the_mail_and_refuses_a_planted_symlink(working):
    import mail_server
    subject = unique("to be deleted")
    inbound(working, "bob@example.com", subject)
    assert wait_for(lambda: subject in subjects(working, "bob@example.com"))
    assert working.delete_maildir("bob@example.com")
    assert "bob@example.com" not in working.maildir_usage()
    assert not working.delete_maildir("bob@example.com")
    # A Maildir path planted as a symlink (by the `mail` user) is not followed.
    outside = tempfile.mkdtemp()
    victim = os.path.join(outside, "keep")
    open(victim, "w").close()
    os.makedirs(os.path.join(working.layout.root, "vmail", "example.com"), exist_ok=True)
    os.symlink(outside, os.path.join(working.layout.root, "vmail", "example.com", "planted"))
    with pytest.raises(mail_server.MailServerError, match="symlink"):
        working.delete_maildir("planted@example.com")
    assert os.path.exists(victim)
    os.unlink(os.path.join(working.layout.root, "vmail", "example.com", "planted"))
    shutil.rmtree(outside)
