"""The mail routes through the HTTP API of a real server (SQLite and PostgreSQL): each domain's mail
settings, mailboxes, aliases, mailing lists, and Berth's own mail leaving through an SMTP relay
(a local SMTP sink with AUTH, tests/support/smtp_sink.py).

No test here enables mail on a domain, so Berth's own mail server never runs on these servers and
outgoing mail goes through the relay (tests/api/test_mailserver.py runs the mail server itself).
"""
import os
import time

import pytest

import dns_providers
from core.masking import MASK
from support.bind import BindServer
from support.harness import Api, BerthServer, activate, free_port, require, unique
from support.smtp_sink import SmtpSink

ADMIN_DOMAIN = "mail-admin.test"
STATUS_ZONE = "mailstatus.test"
DEFAULTS = {"enabled": False, "mailFromValidation": True, "catchAll": [], "relay": {"provider": "cloudron-smtp"},
            "banner": {"text": "", "html": ""}}


# The test relay takes AUTH without TLS on purpose (aiosmtpd warns on every connection).
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def mail_env():
    """Private mail ports (never 25/587/143/993) and a known public address (no lookup service)."""
    return {"BERTH_MAIL_SMTP_PORT": str(free_port()), "BERTH_MAIL_SUBMISSION_PORT": str(free_port()),
            "BERTH_MAIL_IMAP_PORT": str(free_port()), "BERTH_MAIL_IMAPS_PORT": str(free_port()),
            "BERTH_PUBLIC_IP": "192.0.2.10"}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request):
    url = request.getfixturevalue("postgres").new_database() if request.param == "postgresql" else None
    # A real DNS server is the resolver the mail status asks (when BIND is installed).
    bind = BindServer(STATUS_ZONE).start() if BindServer.available() else None
    env = {**mail_env(), **({"BERTH_MAIL_RESOLVER": f"127.0.0.1:{bind.port}"} if bind else {})}
    berth = BerthServer(database_url=url, env=env).start()
    berth.bind = bind
    # The dashboard domain is where Berth's own mail comes from (no-reply@<it>).
    r = Api(berth.api).post("/cloudron/setup", json={"dnsConfig": {"provider": "noop", "domain": ADMIN_DOMAIN,
                                                                      "config": {}}})
    assert r.status_code == 200, r.text
    yield berth
    if os.path.isdir(os.path.join(berth.data_dir, "mail")):   # nothing here enables mail, but make sure
        import mail_server
        env = berth.env
        mail_server.MailServer(berth.data_dir, *(int(env[f"BERTH_MAIL_{p}_PORT"])
                                                 for p in ("SMTP", "SUBMISSION", "IMAP", "IMAPS"))).stop()
    berth.cleanup()
    if bind is not None:
        bind.stop()


@pytest.fixture(scope="module")
def admin(server):
    return activate(server)


@pytest.fixture(scope="module")
def sink():
    sink = SmtpSink(username="relay-user", password="relay-secret-1").start()
    yield sink
    sink.stop()


def new_domain(api):
    domain = f"{unique('m')}.example.test".lower()
    r = api.post("/domains", json={"domain": domain, "provider": "noop", "config": {}})
    assert r.status_code == 201, r.text
    return domain


def new_user(api, role="user", password="Pass-word-1"):
    name = unique("mu")
    r = api.post("/users", json={"username": name, "email": f"{name}@elsewhere.test", "password": password,
                                 "role": role})
    assert r.status_code == 201, r.text
    return r.json()


def login(server, username, password="Pass-word-1"):
    r = Api(server.api).post("/cloudron/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return Api(server.api, r.json()["token"])


def events(api, action):
    r = api.get("/cloudron/eventlog", params={"action": action, "per_page": 100})
    assert r.status_code == 200, r.text
    return [e["data"] for e in r.json()["eventlogs"]]


def bad(r, field):
    assert r.status_code == 400, r.text
    assert field in r.json()["message"], r.text


# ---- the domain's mail settings ---------------------------------------------------------------------

def test_every_domain_has_mail_settings_with_the_seed_defaults(admin):
    domain = new_domain(admin)
    r = admin.get(f"/mail/{domain}")
    assert r.status_code == 200, r.text
    assert r.json() == {"domain": domain, **DEFAULTS}
    assert admin.get(f"/mail/{domain.upper()}").json()["domain"] == domain
    for path in ("", "/status", "/mailbox_count", "/mailboxes", "/lists"):
        r = admin.get(f"/mail/nonexistent-{domain}{path}")
        assert r.status_code == 404, (path, r.text)
    assert admin.delete(f"/domains/{domain}").status_code == 204
    assert admin.get(f"/mail/{domain}").status_code == 404


def test_settings_round_trip_validate_and_are_recorded(admin):
    domain = new_domain(admin)
    assert admin.post(f"/mail/{domain}/mail_from_validation", json={"enabled": False}).status_code == 202
    r = admin.post(f"/mail/{domain}/catch_all", json={"addresses": ["Ops@example.test", "ops@example.test"]})
    assert r.status_code == 202, r.text
    assert admin.post(f"/mail/{domain}/banner", json={"text": "-- sent by us", "html": "<p>us</p>"}).status_code == 202
    got = admin.get(f"/mail/{domain}").json()
    assert (got["mailFromValidation"], got["catchAll"], got["banner"]) == (
        False, ["ops@example.test"], {"text": "-- sent by us", "html": "<p>us</p>"})

    bad(admin.post(f"/mail/{domain}/catch_all", json={"addresses": ["not an address"]}), "addresses")
    bad(admin.post(f"/mail/{domain}/mail_from_validation", json={"enabled": "yes"}), "enabled")
    bad(admin.post(f"/mail/{domain}/banner", json={"html": "<p>no text</p>"}), "text")
    bad(admin.post(f"/mail/{domain}/banner", json={"text": "x" * 20000}), "text")
    bad(admin.post(f"/mail/{domain}/enable", json={}), "enabled")
    assert admin.get(f"/mail/{domain}").json()["catchAll"] == ["ops@example.test"]   # refused: unchanged
    assert {"domain": domain, "catchAll": ["ops@example.test"]} in events(admin, "mail.update")


def test_relay_is_tested_before_it_is_saved_and_its_password_is_masked(admin, sink):
    domain = new_domain(admin)
    r = admin.post(f"/mail/{domain}/relay", json=sink.relay())
    assert r.status_code == 202, r.text
    relay = admin.get(f"/mail/{domain}").json()["relay"]
    assert relay == {"provider": "external-smtp", "host": "127.0.0.1", "port": sink.port, "username": "relay-user",
                     "password": MASK, "acceptSelfSignedCerts": True}
    assert "relay-secret-1" not in admin.get(f"/mail/{domain}").text

    # The mask sent back keeps the stored password: the relay test logs in with the real one.
    before = len(sink.logins)
    assert admin.post(f"/mail/{domain}/relay", json=sink.relay(password=MASK)).status_code == 202
    assert sink.logins[before:] and all(ok for _, ok in sink.logins[before:])

    # A refusing relay (wrong password) and an unreachable one: 400 with their words, nothing saved.
    r = admin.post(f"/mail/{domain}/relay", json=sink.relay(username="other", password="wrong-pass"))
    assert r.status_code == 400 and "relay test failed" in r.json()["message"], r.text
    assert "535" in r.json()["message"] or "auth" in r.json()["message"].lower(), r.text
    r = admin.post(f"/mail/{domain}/relay", json=sink.relay(port=free_port()))
    assert r.status_code == 400 and "relay test failed" in r.json()["message"], r.text
    assert admin.get(f"/mail/{domain}").json()["relay"]["username"] == "relay-user"
    assert "wrong-pass" not in str(events(admin, "mail.update"))

    bad(admin.post(f"/mail/{domain}/relay", json={"provider": "external-smtp"}), "host")
    bad(admin.post(f"/mail/{domain}/relay", json={"provider": "external-smtp", "host": "a b"}), "host")
    bad(admin.post(f"/mail/{domain}/relay", json={"provider": "nonsense"}), "provider")
    assert admin.post(f"/mail/{domain}/relay", json={"provider": "noop"}).status_code == 202
    assert admin.get(f"/mail/{domain}").json()["relay"] == {"provider": "noop"}


def test_status_reports_expected_records_and_what_dns_answers(admin):
    domain = new_domain(admin)
    r = admin.get(f"/mail/{domain}/status")
    assert r.status_code == 200, r.text
    dns = r.json()["dns"]
    assert set(dns) == {"mx", "spf", "dkim", "dmarc", "ptr"}
    assert dns["mx"]["expected"] == f"10 my.{ADMIN_DOMAIN}." and dns["mx"]["type"] == "MX"
    assert dns["spf"]["expected"] == f"v=spf1 a:my.{ADMIN_DOMAIN} ~all"
    assert dns["dmarc"]["domain"] == f"_dmarc.{domain}"
    assert dns["ptr"]["domain"] == "10.2.0.192.in-addr.arpa."
    # example.test exists nowhere: nothing found, nothing good
    assert not any(record["status"] for record in dns.values())
    assert r.json()["relay"] == {"status": False, "value": "The built-in mail server is not running"}


def test_status_finds_the_records_a_real_dns_server_serves(admin, server):
    require("BIND (Debian package bind9: named)", server.bind is not None)
    bind = server.bind
    r = admin.post("/domains", json={"domain": STATUS_ZONE, "provider": "rfc2136", "config": bind.provider_config()})
    assert r.status_code == 201, r.text
    provider = dns_providers.create("rfc2136", STATUS_ZONE, bind.provider_config())
    provider.upsert_records("", "MX", [f"10 my.{ADMIN_DOMAIN}."])
    provider.upsert_records("", "TXT", ["v=spf1 a:elsewhere.test ~all"])
    provider.upsert_records("_dmarc", "TXT", ["v=DMARC1; p=none"])
    dns = admin.get(f"/mail/{STATUS_ZONE}/status").json()["dns"]
    assert dns["mx"] == {"domain": STATUS_ZONE, "name": "@", "type": "MX", "value": f"10 my.{ADMIN_DOMAIN}.",
                         "expected": f"10 my.{ADMIN_DOMAIN}.", "status": True}
    assert (dns["spf"]["value"], dns["spf"]["status"]) == ("v=spf1 a:elsewhere.test ~all", False)  # not our host
    assert (dns["dmarc"]["value"], dns["dmarc"]["status"]) == ("v=DMARC1; p=none", True)
    assert (dns["dkim"]["value"], dns["dkim"]["status"]) == (None, False)
    provider.upsert_records("", "TXT", [f"v=spf1 a:my.{ADMIN_DOMAIN} ~all"])
    assert admin.get(f"/mail/{STATUS_ZONE}/status").json()["dns"]["spf"]["status"] is True


# ---- mailboxes and aliases --------------------------------------------------------------------------------

def test_mailboxes_add_list_search_page_update_remove(admin):
    domain = new_domain(admin)
    user = new_user(admin)
    group = admin.post("/groups", json={"name": unique("mg")}).json()
    for name in ("carol", "alice", "Bob"):
        r = admin.post(f"/mail/{domain}/mailboxes", json={"name": name, "ownerId": user["id"], "ownerType": "user"})
        assert r.status_code == 201 and r.json() == {}, r.text
    r = admin.post(f"/mail/{domain}/mailboxes", json={"name": "team", "ownerId": group["id"], "ownerType": "group",
                                                       "active": False})
    assert r.status_code == 201, r.text
    assert admin.get(f"/mail/{domain}/mailbox_count").json() == {"count": 4}

    listed = admin.get(f"/mail/{domain}/mailboxes").json()["mailboxes"]
    assert [m["name"] for m in listed] == ["alice", "bob", "carol", "team"]
    assert set(listed[0]) == {"name", "domain", "ownerId", "ownerType", "active", "aliases", "creationTime"}
    assert listed[3]["ownerType"] == "group" and listed[3]["active"] is False
    page = admin.get(f"/mail/{domain}/mailboxes", params={"page": 2, "per_page": 2}).json()["mailboxes"]
    assert [m["name"] for m in page] == ["carol", "team"]
    assert [m["name"] for m in admin.get(f"/mail/{domain}/mailboxes", params={"search": "AR"}).json()["mailboxes"]] \
        == ["carol"]

    r = admin.get(f"/mail/{domain}/mailboxes/alice")
    assert r.status_code == 200 and r.json()["mailbox"]["ownerId"] == user["id"], r.text
    r = admin.post(f"/mail/{domain}/mailboxes/alice", json={"ownerId": group["id"], "ownerType": "group",
                                                            "active": False})
    assert r.status_code == 204, r.text
    got = admin.get(f"/mail/{domain}/mailboxes/alice").json()["mailbox"]
    assert (got["ownerId"], got["ownerType"], got["active"]) == (group["id"], "group", False)

    r = admin.delete(f"/mail/{domain}/mailboxes/carol", json={"deleteMails": False})
    assert r.status_code == 201 and r.json() == {}, r.text
    assert admin.get(f"/mail/{domain}/mailboxes/carol").status_code == 404
    assert admin.delete(f"/mail/{domain}/mailboxes/carol").status_code == 404
    added = events(admin, "mail.box.add")
    assert {"domain": domain, "name": "bob", "ownerId": user["id"], "ownerType": "user"} in added
    assert any(e["name"] == "carol" for e in events(admin, "mail.box.remove"))


def test_mailbox_refusals(admin):
    domain = new_domain(admin)
    user = new_user(admin)
    url = f"/mail/{domain}/mailboxes"
    assert admin.post(url, json={"name": "dup", "ownerId": user["id"], "ownerType": "user"}).status_code == 201
    r = admin.post(url, json={"name": "DUP", "ownerId": user["id"], "ownerType": "user"})
    assert r.status_code == 409, r.text
    bad(admin.post(url, json={"name": "a b", "ownerId": user["id"], "ownerType": "user"}), "name")
    bad(admin.post(url, json={"name": ".dot", "ownerId": user["id"], "ownerType": "user"}), "name")
    bad(admin.post(url, json={"name": "x", "ownerId": "uid-nobody", "ownerType": "user"}), "ownerId")
    bad(admin.post(url, json={"name": "x", "ownerId": user["id"], "ownerType": "group"}), "ownerId")
    bad(admin.post(url, json={"name": "x", "ownerId": user["id"], "ownerType": "robot"}), "ownerType")
    bad(admin.post(f"{url}/dup", json={"ownerId": "uid-nobody", "ownerType": "user"}), "ownerId")
    assert admin.post(f"{url}/nobody", json={"ownerId": user["id"], "ownerType": "user"}).status_code == 404
    # a domain with mailboxes cannot be removed
    r = admin.delete(f"/domains/{domain}")
    assert r.status_code == 409 and "mailboxes" in r.json()["message"], r.text
    assert admin.delete(f"{url}/dup").status_code == 201
    assert admin.delete(f"/domains/{domain}").status_code == 204


def test_aliases_replace_clash_and_follow_their_mailbox(admin):
    domain, other = new_domain(admin), new_domain(admin)
    user = new_user(admin)
    for name in ("owner-box", "taken"):
        admin.post(f"/mail/{domain}/mailboxes", json={"name": name, "ownerId": user["id"], "ownerType": "user"})
    url = f"/mail/{domain}/mailboxes/owner-box/aliases"
    assert admin.get(url).json() == {"aliases": []}
    r = admin.put(url, json={"aliases": [{"name": "Info", "domain": domain}, {"name": "hello", "domain": other},
                                         {"name": "info", "domain": domain}]})
    assert r.status_code == 202, r.text
    wanted = [{"name": "info", "domain": domain}, {"name": "hello", "domain": other}]
    assert admin.get(url).json()["aliases"] == sorted(wanted, key=lambda a: (a["domain"], a["name"]))
    assert len(admin.get(url, params={"per_page": 1, "page": 2}).json()["aliases"]) == 1
    assert {"name": "info", "domain": domain} in admin.get(f"/mail/{domain}/mailboxes/owner-box").json()[
        "mailbox"]["aliases"]

    # clashes: with a mailbox, and with another mailbox's alias: 409, the old aliases stay
    r = admin.put(url, json={"aliases": [{"name": "taken", "domain": domain}]})
    assert r.status_code == 409, r.text
    r = admin.put(f"/mail/{domain}/mailboxes/taken/aliases", json={"aliases": [{"name": "hello", "domain": other}]})
    assert r.status_code == 409, r.text
    assert len(admin.get(url).json()["aliases"]) == 2
    bad(admin.put(url, json={"aliases": [{"name": "x", "domain": "nonexistent.test"}]}), "aliases[0].domain")
    bad(admin.put(url, json={"aliases": [{"name": "a/b", "domain": domain}]}), "name")
    # a mailbox's name is taken by an alias
    r = admin.post(f"/mail/{domain}/mailboxes", json={"name": "info", "ownerId": user["id"], "ownerType": "user"})
    assert r.status_code == 409, r.text
    # removing the mailbox removes its aliases: the names are free again
    assert admin.delete(f"/mail/{domain}/mailboxes/owner-box").status_code == 201
    r = admin.put(f"/mail/{domain}/mailboxes/taken/aliases", json={"aliases": [{"name": "hello", "domain": other}]})
    assert r.status_code == 202, r.text


def test_mailing_lists(admin):
    domain = new_domain(admin)
    user = new_user(admin)
    url = f"/mail/{domain}/lists"
    r = admin.post(url, json={"name": "Team", "members": ["A@x.test", "b@x.test", "a@x.test"], "membersOnly": True})
    assert r.status_code == 201 and r.json() == {}, r.text
    assert admin.post(url, json={"name": "other", "members": ["c@x.test"]}).status_code == 201
    got = admin.get(f"{url}/team").json()["list"]
    assert got == {"name": "team", "domain": domain, "members": ["a@x.test", "b@x.test"], "membersOnly": True,
                   "active": True}
    assert [x["name"] for x in admin.get(url).json()["lists"]] == ["other", "team"]
    assert [x["name"] for x in admin.get(url, params={"search": "tea"}).json()["lists"]] == ["team"]
    assert admin.post(url, json={"name": "team", "members": ["c@x.test"]}).status_code == 409
    r = admin.post(f"/mail/{domain}/mailboxes", json={"name": "team", "ownerId": user["id"], "ownerType": "user"})
    assert r.status_code == 409, r.text
    bad(admin.post(url, json={"name": "x", "members": ["not-an-address"]}), "members")
    assert admin.post(url, json={"name": "x", "members": []}).status_code == 400

    r = admin.post(f"{url}/team", json={"members": ["d@x.test"], "membersOnly": False, "active": False})
    assert r.status_code == 204, r.text
    got = admin.get(f"{url}/team").json()["list"]
    assert (got["members"], got["membersOnly"], got["active"]) == (["d@x.test"], False, False)
    assert admin.delete(f"{url}/team").status_code == 204
    assert admin.get(f"{url}/team").status_code == 404
    assert admin.delete(f"{url}/team").status_code == 404
    assert admin.post(f"{url}/team", json={"members": ["d@x.test"]}).status_code == 404
    assert [e["name"] for e in events(admin, "mail.list.remove") if e["domain"] == domain] == ["team"]


def test_roles_mail_manager_manages_mailboxes_not_settings(admin, server):
    domain = new_domain(admin)
    owner = new_user(admin)
    manager = login(server, new_user(admin, role="mailmanager")["username"])
    user = login(server, new_user(admin)["username"])
    body = {"name": "by-manager", "ownerId": owner["id"], "ownerType": "user"}
    assert manager.post(f"/mail/{domain}/mailboxes", json=body).status_code == 201
    assert manager.get(f"/mail/{domain}/mailboxes").status_code == 200
    assert manager.post(f"/mail/{domain}/lists", json={"name": "ml", "members": ["a@x.test"]}).status_code == 201
    for r in (manager.get(f"/mail/{domain}"), manager.post(f"/mail/{domain}/enable", json={"enabled": True}),
              manager.get("/mailserver/eventlog"), user.get(f"/mail/{domain}/mailboxes"),
              user.post(f"/mail/{domain}/mailboxes", json={**body, "name": "by-user"})):
        assert r.status_code == 403, r.text


# ---- Berth's own mail through the relay ---------------------------------------------------------------------

def test_without_a_way_out_mail_is_refused_with_424(admin):
    domain = new_domain(admin)
    r = admin.post(f"/mail/{domain}/send_test_mail", json={"to": "someone@elsewhere.test"})
    assert r.status_code == 424 and "not configured" in r.json()["message"], r.text
    admin.post(f"/mail/{domain}/relay", json={"provider": "noop"})
    r = admin.post(f"/mail/{domain}/send_test_mail", json={"to": "someone@elsewhere.test"})
    assert r.status_code == 424 and "noop" in r.json()["message"], r.text
    bad(admin.post(f"/mail/{domain}/send_test_mail", json={"to": "bad address"}), "to")


def test_test_mail_invite_and_password_reset_arrive_through_the_relay(admin, server, sink):
    domain = new_domain(admin)
    assert admin.post(f"/mail/{domain}/relay", json=sink.relay()).status_code == 202
    to = f"{unique('t')}@elsewhere.test"
    r = admin.post(f"/mail/{domain}/send_test_mail", json={"to": to})
    assert r.status_code == 202, r.text
    got = sink.wait_for(lambda m: m["To"] == to)
    assert got["From"].addresses[0].addr_spec == f"no-reply@{domain}"

    # Invites and resets come from the dashboard domain: give it the relay.
    assert admin.post(f"/mail/{ADMIN_DOMAIN}/relay", json=sink.relay()).status_code == 202
    invited = admin.post("/users", json={"email": f"{unique('inv')}@elsewhere.test"}).json()
    assert admin.post(f"/users/{invited['id']}/send_invite").status_code == 409   # no invite yet
    first = admin.post(f"/users/{invited['id']}/create_invite").json()["resetToken"]
    r = admin.post(f"/users/{invited['id']}/send_invite")
    assert r.status_code == 200 and r.json() == {}, r.text
    mail = sink.wait_for(lambda m: m["To"] == invited["email"])
    assert mail["From"].addresses[0].addr_spec == f"no-reply@{ADMIN_DOMAIN}"
    body = mail.get_body(("plain",)).get_content()
    assert f"https://my.{ADMIN_DOMAIN}/setup-account?inviteToken=" in body and first not in body

    user = new_user(admin)
    before = time.time()
    r = Api(server.api).post("/cloudron/password_reset_request", json={"identifier": user["username"]})
    assert r.status_code == 202, r.text
    mail = sink.wait_for(lambda m: m["To"] == user["email"])
    assert "/passwordreset.html?resetToken=" in mail.get_body(("plain",)).get_content()
    assert time.time() - before < 20
    r = Api(server.api).post("/cloudron/password_reset_request", json={"identifier": "nobody-at-all"})
    assert r.status_code == 202, r.text
