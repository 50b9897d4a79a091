"""Support through the HTTP API of one real server (SQLite): the support config, a ticket mailed to
the support address through Berth's outgoing mail (an SMTP relay: tests/support/smtp_sink.py), and
remote support, which Berth refuses. The rules of the ticket (fields, no address) are unit tests
(tests/unit/appstore)."""
import pytest

from support.harness import Api, BerthServer, activate, free_port
from support.smtp_sink import SmtpSink

DOMAIN = "support-admin.test"
SUPPORT = "help@operator.test"

# The test relay takes AUTH without TLS on purpose (aiosmtpd warns on every connection).
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@pytest.fixture(scope="module")
def server():
    # Private mail ports: the mail server never runs here (no domain enables mail), but never 25/587.
    env = {"BERTH_SUPPORT_EMAIL": SUPPORT, "BERTH_MAIL_SMTP_PORT": str(free_port()),
           "BERTH_MAIL_SUBMISSION_PORT": str(free_port()), "BERTH_PUBLIC_IP": "192.0.2.10"}
    berth = BerthServer(env=env).start()
    r = Api(berth.api).post("/cloudron/setup", json={"dnsConfig": {"provider": "noop", "domain": DOMAIN, "config": {}}})
    assert r.status_code == 200, r.text
    yield berth
    berth.cleanup()


@pytest.fixture(scope="module")
def owner(server):
    return activate(server, email="owner@support.test")


@pytest.fixture(scope="module")
def sink():
    sink = SmtpSink(username="relay-user", password="relay-secret-1").start()
    yield sink
    sink.stop()


TICKET = {"type": "app_error", "subject": "The wiki is slow", "description": "Pages take 10 s to load.",
          "appId": "some-app", "altEmail": "me@elsewhere.test"}


def test_support_config_names_the_address_and_no_remote_support(owner):
    r = owner.get("/settings/support_config")
    assert r.status_code == 200, r.text
    assert r.json()["email"] == SUPPORT and r.json()["submitTickets"] is True
    assert r.json()["remoteSupport"] is False


def test_ticket_without_a_mail_path_is_refused_with_a_message(owner):
    r = owner.post("/support/ticket", json=TICKET)
    assert r.status_code == 424 and "outgoing mail is not configured" in r.json()["message"], r.text


def test_ticket_arrives_at_the_support_address(owner, sink):
    assert owner.post(f"/mail/{DOMAIN}/relay", json=sink.relay()).status_code == 202
    r = owner.post("/support/ticket", json=TICKET)
    assert r.status_code == 201 and SUPPORT in r.json()["message"], r.text
    mail = sink.wait_for(lambda m: m["To"] == SUPPORT)
    assert mail["Subject"] == "[Berth support] The wiki is slow"
    assert mail["From"].endswith(f"<no-reply@{DOMAIN}>")
    body = mail.get_payload(decode=True).decode()
    assert "Pages take 10 s to load." in body and "owner@support.test" in body
    assert "App: some-app" in body and "me@elsewhere.test" in body

    r = owner.post("/support/ticket", json={**TICKET, "type": "sales"})
    assert r.status_code == 400 and "type" in r.json()["message"], r.text


def test_remote_support_stays_off(owner):
    assert owner.get("/support/remote_support").json() == {"enabled": False}
    r = owner.post("/support/remote_support", json={"enable": True})
    assert r.status_code == 405 and "support SSH key" in r.json()["message"], r.text
    assert owner.post("/support/remote_support", json={"enable": False}).status_code == 202
    assert owner.get("/support/remote_support").json() == {"enabled": False}
