"""The mailserver routes (settings and reports of the one mail server) through the HTTP API, and
then the whole mail path end to end: Berth's mail server (mail_server: Postfix, Dovecot, rspamd) on
private ports, mail sent over SMTP and read back over IMAP with the owner's Berth password and an
app password, aliases, lists, catch-all, refusals, and outgoing mail (test mail, invites) arriving
DKIM-signed at a local SMTP sink acting as the domain's relay.
"""
import imaplib
import os
import shutil
import smtplib
import time

import dkim
import pytest
import requests

from support import mail_client
from support.bind import BindServer
from support.harness import Api, BerthServer, activate, free_port, require, unique
from support.smtp_sink import SmtpSink

ZONE = "berthmail.test"          # the dashboard domain and the mail domain, served by BIND
PASSWORD = "Pass-word-1"


# The test relay takes AUTH without TLS on purpose (aiosmtpd warns on every connection).
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def mail_ports():
    return {"smtp": free_port(), "submission": free_port(), "imap": free_port(), "imaps": free_port()}


def start_server(ports, database_url=None, extra=None):
    env = {"BERTH_MAIL_SMTP_PORT": str(ports["smtp"]), "BERTH_MAIL_SUBMISSION_PORT": str(ports["submission"]),
           "BERTH_MAIL_IMAP_PORT": str(ports["imap"]), "BERTH_MAIL_IMAPS_PORT": str(ports["imaps"]),
           "BERTH_PUBLIC_IP": "192.0.2.10", **(extra or {})}
    return BerthServer(database_url=database_url, env=env).start()


def stop_mail(server, ports):
    """The mail server outlives Berth by design (like nginx): stop the one this server started."""
    import mail_server
    if os.path.isdir(os.path.join(server.data_dir, "mail")):
        mail_server.MailServer(server.data_dir, ports["smtp"], ports["submission"], ports["imap"],
                               ports["imaps"]).stop()


def new_domain(api):
    domain = f"{unique('ms')}.example.test".lower()
    assert api.post("/domains", json={"domain": domain, "provider": "noop", "config": {}}).status_code == 201
    return domain


def new_user(api, role="user"):
    name = unique("su")
    r = api.post("/users", json={"username": name, "email": f"{name}@elsewhere.test", "password": PASSWORD,
                                 "role": role})
    assert r.status_code == 201, r.text
    return r.json()


# ---- settings and reports (no mail domain enabled: the server does not run) -------------------------------

@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def admin(request):
    url = request.getfixturevalue("postgres").new_database() if request.param == "postgresql" else None
    ports = mail_ports()
    server = start_server(ports, url)
    api = activate(server)
    api.server = server
    yield api
    stop_mail(server, ports)
    server.cleanup()


def bad(r, field):
    assert r.status_code == 400, r.text
    assert field in r.json()["message"], r.text


def test_location_defaults_to_the_dashboard_host_and_moves_with_a_task(admin):
    assert admin.get("/mailserver/location").json() == {"subdomain": "my", "domain": ""}
    domain = new_domain(admin)
    r = admin.post("/mailserver/location", json={"subdomain": "Mail", "domain": domain})
    assert r.status_code == 202, r.text
    task_id = r.json()["taskId"]
    deadline = time.time() + 30
    while (task := admin.get(f"/tasks/{task_id}").json())["active"] or task["pending"]:
        assert time.time() < deadline, task
        time.sleep(0.1)
    assert task["success"] is True and task["type"] == "changeMailLocation", task
    assert admin.get("/mailserver/location").json() == {"subdomain": "mail", "domain": domain}
    assert admin.get(f"/mail/{domain}/status").json()["dns"]["mx"]["expected"] == f"10 mail.{domain}."
    r = admin.post("/mailserver/location", json={"subdomain": "x", "domain": "nonexistent.test"})
    assert r.status_code == 404, r.text
    bad(admin.post("/mailserver/location", json={"subdomain": "a b", "domain": domain}), "subdomain")
    events = admin.get("/cloudron/eventlog", params={"action": "mail.location"}).json()["eventlogs"]
    assert events[0]["data"]["fqdn"] == f"mail.{domain}"


def test_max_email_size_spam_lists_and_rules_round_trip(admin):
    assert admin.get("/mailserver/max_email_size").json() == {"size": 25 * 1024 * 1024}
    assert admin.post("/mailserver/max_email_size", json={"size": 1000000}).json() == {}
    assert admin.get("/mailserver/max_email_size").json() == {"size": 1000000}
    assert admin.post("/mailserver/max_email_size", json={"size": 0}).status_code == 400
    bad(admin.post("/mailserver/max_email_size", json={"size": True}), "size")

    assert admin.get("/mailserver/spam_acl").json() == {"whitelist": [], "blacklist": []}
    r = admin.post("/mailserver/spam_acl", json={"whitelist": ["friend@ok.test", "*.partner.test"],
                                                 "blacklist": ["*@Spam.test"]})
    assert r.status_code == 200 and r.json() == {}, r.text
    assert admin.get("/mailserver/spam_acl").json() == {"whitelist": ["friend@ok.test", "*.partner.test"],
                                                        "blacklist": ["*@spam.test"]}
    bad(admin.post("/mailserver/spam_acl", json={"blacklist": ["spaces are not allowed"]}), "blacklist")
    assert admin.get("/mailserver/spam_acl").json()["blacklist"] == ["*@spam.test"]

    rules = "header LOCAL_TEST Subject =~ /viagra/i\nscore LOCAL_TEST 5.0\n"
    assert admin.post("/mailserver/spam_custom_config", json={"config": rules}).status_code == 200
    assert admin.get("/mailserver/spam_custom_config").json() == {"config": rules}


def test_solr_is_answered_honestly(admin):
    got = admin.get("/mailserver/solr_config").json()
    assert (got["enabled"], got["running"]) == (False, False) and "Solr" in got["note"]
    assert admin.post("/mailserver/solr_config", json={"enabled": False}).status_code == 200
    bad(admin.post("/mailserver/solr_config", json={"enabled": True}), "enabled")


def test_usage_and_eventlog_shapes(admin):
    domain = new_domain(admin)
    user = new_user(admin)
    admin.post(f"/mail/{domain}/mailboxes", json={"name": "box", "ownerId": user["id"], "ownerType": "user"})
    r = admin.get("/mailserver/usage", params={"domain": domain})
    assert r.status_code == 200 and r.json() == {"usage": {f"box@{domain}": {"diskSize": 0}}}, r.text
    assert admin.get("/mailserver/usage", params={"domain": "nonexistent.test"}).status_code == 404
    r = admin.get("/mailserver/eventlog", params={"types": "delivered,bounce", "search": "x"})
    assert r.status_code == 200 and r.json() == {"eventlogs": []}, r.text


def test_mailserver_routes_are_for_admins_only(admin):
    manager = new_user(admin, role="mailmanager")
    token = Api(admin.base).post("/cloudron/login", json={"username": manager["username"],
                                                          "password": PASSWORD}).json()["token"]
    as_manager = admin.with_token(token)
    for path in ("/mailserver/location", "/mailserver/max_email_size", "/mailserver/spam_acl",
                 "/mailserver/eventlog", "/mailserver/solr_config"):
        assert as_manager.get(path).status_code == 403, path


# ---- end to end: Berth's mail server ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def live():
    """A Berth whose dashboard domain (served by a real BIND, written through rfc2136) has mail
    enabled: the mail server runs on private ports. Skips (fails under BERTH_REQUIRE_ALL=1) when
    the mail server or its programs are missing."""
    require("Postfix and Dovecot (Debian packages postfix, dovecot-imapd, dovecot-lmtpd)",
            shutil.which("postfix") and shutil.which("dovecot"))
    require("BIND (Debian package bind9: named)", BindServer.available())
    bind = BindServer(ZONE).start()
    ports = mail_ports()
    server = start_server(ports, extra={"BERTH_MAIL_RESOLVER": f"127.0.0.1:{bind.port}"})
    sink = SmtpSink(username="relay-user", password="relay-secret-1").start()
    try:
        r = Api(server.api).post("/cloudron/setup", json={"dnsConfig": {
            "provider": "rfc2136", "domain": ZONE, "config": bind.provider_config()}})
        assert r.status_code == 200, r.text
        api = activate(server)
        # The first start of the mail server takes a while (rspamd compiles its rules).
        r = requests.post(f"{server.api}/mail/{ZONE}/enable", json={"enabled": True},
                          headers={"Authorization": f"Bearer {api.token}"}, timeout=300)
        require(f"a working mail server (mail_server.apply; enabling answered {r.status_code} {r.text[:300]})",
                r.status_code == 202)
        yield {"api": api, "server": server, "ports": ports, "bind": bind, "sink": sink}
    finally:
        sink.stop()
        stop_mail(server, ports)
        server.cleanup()
        bind.stop()


def send(live, sender, rcpt, subject=None, size=0):
    return mail_client.send(live["ports"]["smtp"], sender, rcpt, subject, "hello\n" + "x" * size)


def imap_login(live, login, password):
    return mail_client.imap_login("127.0.0.1", live["ports"]["imap"], login, password)


def wait_in_inbox(live, login, password, subject, timeout=90):
    return mail_client.wait_in_inbox("127.0.0.1", live["ports"]["imap"], login, password, subject, timeout)


@pytest.fixture(scope="module")
def alice(live):
    api = live["api"]
    user = new_user(api)
    r = api.post(f"/mail/{ZONE}/mailboxes", json={"name": "alice", "ownerId": user["id"], "ownerType": "user"})
    assert r.status_code == 201, r.text
    return user


def test_mail_lands_in_the_mailbox_and_the_owner_reads_it_with_password_or_app_password(live, alice):
    subject = send(live, "someone@elsewhere.test", f"alice@{ZONE}")
    assert wait_in_inbox(live, f"alice@{ZONE}", PASSWORD, subject)
    assert wait_in_inbox(live, alice["username"], PASSWORD, subject)
    token = Api(live["server"].api).post("/cloudron/login", json={"username": alice["username"],
                                                                  "password": PASSWORD}).json()["token"]
    app_password = live["api"].with_token(token).post("/app_passwords", json={"name": "phone",
                                                                              "identifier": "mail"}).json()["password"]
    assert wait_in_inbox(live, f"alice@{ZONE}", app_password, subject)
    with pytest.raises(imaplib.IMAP4.error):
        imap_login(live, f"alice@{ZONE}", "wrong-password")
    usage = live["api"].get("/mailserver/usage", params={"domain": ZONE}).json()["usage"]
    assert usage[f"alice@{ZONE}"]["diskSize"] > 0


def test_aliases_lists_and_catch_all_deliver(live, alice):
    api = live["api"]
    assert api.put(f"/mail/{ZONE}/mailboxes/alice/aliases",
                   json={"aliases": [{"name": "info", "domain": ZONE}]}).status_code == 202
    assert wait_in_inbox(live, f"alice@{ZONE}", PASSWORD, send(live, "a@elsewhere.test", f"info@{ZONE}"))
    assert api.post(f"/mail/{ZONE}/lists", json={"name": "team", "members": [f"alice@{ZONE}"],
                                                 "membersOnly": True}).status_code == 201
    assert wait_in_inbox(live, f"alice@{ZONE}", PASSWORD, send(live, f"alice@{ZONE}", f"team@{ZONE}"))
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send(live, "outsider@elsewhere.test", f"team@{ZONE}")         # members only
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send(live, "a@elsewhere.test", f"nobody@{ZONE}")              # unknown: refused at SMTP time
    assert api.post(f"/mail/{ZONE}/catch_all", json={"addresses": [f"alice@{ZONE}"]}).status_code == 202
    assert wait_in_inbox(live, f"alice@{ZONE}", PASSWORD, send(live, "a@elsewhere.test", f"nobody@{ZONE}"))
    assert api.post(f"/mail/{ZONE}/catch_all", json={"addresses": []}).status_code == 202


def test_oversize_mail_and_blocked_senders_are_refused(live, alice):
    api = live["api"]
    assert api.post("/mailserver/max_email_size", json={"size": 20000}).status_code == 200
    try:
        with pytest.raises(smtplib.SMTPException):
            send(live, "a@elsewhere.test", f"alice@{ZONE}", size=60000)
    finally:
        assert api.post("/mailserver/max_email_size", json={"size": 25 * 1024 * 1024}).status_code == 200
    assert api.post("/mailserver/spam_acl", json={"blacklist": ["*@spam.test"]}).status_code == 200
    with pytest.raises(smtplib.SMTPException):
        send(live, "bad@spam.test", f"alice@{ZONE}")
    assert api.post("/mailserver/spam_acl", json={}).status_code == 200


def test_deactivated_user_cannot_log_in(live):
    api = live["api"]
    user = new_user(api)
    api.post(f"/mail/{ZONE}/mailboxes", json={"name": "bob", "ownerId": user["id"], "ownerType": "user"})
    imap_login(live, f"bob@{ZONE}", PASSWORD).logout()
    assert api.post(f"/users/{user['id']}/active", json={"active": False}).status_code == 200
    with pytest.raises(imaplib.IMAP4.error):
        imap_login(live, f"bob@{ZONE}", PASSWORD)


def test_records_are_written_and_outgoing_mail_is_dkim_signed_through_the_relay(live):
    api, sink, bind = live["api"], live["sink"], live["bind"]
    dns = api.get(f"/mail/{ZONE}/status").json()["dns"]
    assert all(dns[k]["status"] for k in ("mx", "spf", "dkim", "dmarc")), dns
    assert api.post(f"/mail/{ZONE}/relay", json=sink.relay()).status_code == 202
    to = f"{unique('t')}@elsewhere.test"
    assert api.post(f"/mail/{ZONE}/send_test_mail", json={"to": to}).status_code == 202
    got = sink.wait_for(lambda m: m["To"] == to, timeout=30)
    assert "DKIM-Signature" in got

    def dnsfunc(name, timeout=5):
        answers = bind.query(name.decode().rstrip(".")[: -len(ZONE) - 1], "TXT")
        return "".join(a.replace('" "', "").strip('"') for a in answers).encode()
    assert dkim.verify(sink.raw_of(got), dnsfunc=dnsfunc)

    invited = api.post("/users", json={"email": f"{unique('inv')}@elsewhere.test"}).json()
    api.post(f"/users/{invited['id']}/create_invite")
    assert api.post(f"/users/{invited['id']}/send_invite").status_code == 200
    mail = sink.wait_for(lambda m: m["To"] == invited["email"], timeout=30)
    assert f"https://my.{ZONE}/setup-account?inviteToken=" in mail.get_body(("plain",)).get_content()
    events = api.get("/mailserver/eventlog", params={"per_page": 100}).json()["eventlogs"]
    assert events and {"ts", "type", "direction", "messageId", "mailFrom", "rcptTo", "details"} <= set(events[0])
