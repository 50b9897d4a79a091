"""Berth's own mail leaving through a domain's relay (a local SMTP sink with AUTH), on a throw-away
SQLite database with no mail server running: the route chosen, the words of a refusal, and the
failed-backup notice mailed to every active admin."""
import types
import uuid

import pytest

from core.errors import DependencyFailed
from support.smtp_sink import SmtpSink

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@pytest.fixture
def sink():
    sink = SmtpSink(username="relay-user", password="relay-secret-1").start()
    yield sink
    sink.stop()


def world(relay=None):
    from models import Domain, Setting, User
    from models.mail import MailDomain
    Domain.create(domain="admin.test", zone_name="admin.test", provider="noop", fallback_cert="-", fallback_key="-")
    Setting.put("admin_domain", "admin.test")
    if relay is not None:
        MailDomain.create(domain="admin.test", relay=relay)
    for name, role, active in (("boss", "owner", True), ("second", "admin", True), ("gone", "admin", False),
                               ("pat", "user", True)):
        User.create(id=f"uid-{uuid.uuid4()}", username=name, email=f"{name}@elsewhere.test", role=role,
                    active=active)


def test_without_a_server_or_relay_nothing_can_be_sent(db):
    from mail import outgoing
    world()
    with pytest.raises(DependencyFailed, match="not configured"):
        outgoing.send("x@elsewhere.test", "s", "t")


def test_mail_goes_through_the_relay_from_no_reply_of_the_dashboard_domain(db, sink):
    from mail import outgoing
    world(sink.relay())
    assert outgoing.route("admin.test") == "relay"
    outgoing.send("x@elsewhere.test", "Hello", "body text\n")
    got = sink.wait_for(lambda m: m["Subject"] == "Hello")
    assert got["From"].addresses[0].addr_spec == "no-reply@admin.test" and got["Message-ID"].endswith("@admin.test>")
    assert sink.logins[-1] == ("relay-user", True)


def test_a_refusing_relay_is_a_424_with_its_words(db, sink):
    from mail import outgoing
    world(sink.relay(password="wrong-one"))
    with pytest.raises(DependencyFailed, match="535"):
        outgoing.send("x@elsewhere.test", "s", "t")


def test_a_failed_backup_is_mailed_to_every_active_admin(db, sink):
    from backups import stages
    world(sink.relay())
    stages.notify_failure("Backup failed", RuntimeError("disk full"), types.SimpleNamespace(id=42))
    for name in ("boss", "second"):
        got = sink.wait_for(lambda m, name=name: m["To"] == f"{name}@elsewhere.test")
        assert got["Subject"] == "[Berth] Backup failed" and "Task 42" in got.get_body(("plain",)).get_content()
    assert {m[3]["To"] for m in sink.messages} == {"boss@elsewhere.test", "second@elsewhere.test"}
    from models.notifications import Notification
    assert Notification.select().where(Notification.title == "Backup failed").exists()
