"""Mail over the life of a server, through the HTTP API and over SMTP and IMAP against Berth's real
mail server (Postfix, Dovecot, rspamd on private ports):

- removing a mailbox with `deleteMails` removes its stored mail, without it the mail stays (and a
  mailbox made again under that name finds it);
- a deleted user or group leaves its mailboxes as they are, as Cloudron does since 2018 (mail is
  still accepted, nobody logs in) until an admin gives them a new owner, who then reads the mail;
- after Berth restarts on a machine where nothing of the mail server runs any more (a reboot), the
  mail server is brought back by the server itself (mail.restore, at the first health check),
  without slowing the server's start.
"""
import imaplib
import os
import shutil
import smtplib
import time

import pytest
import requests

from support import mail_client
from support.harness import Api, BerthServer, activate, free_port, require, unique

ZONE = "lifecycle-mail.test"     # the dashboard domain and the mail domain (noop DNS)
PASSWORD = "Pass-word-1"


def mail_server_of(live):
    import mail_server
    ports = live["ports"]
    return mail_server.MailServer(live["server"].data_dir, ports["smtp"], ports["submission"], ports["imap"],
                                  ports["imaps"])


@pytest.fixture(scope="module")
def live():
    require("Postfix, Dovecot and rspamd (Debian packages postfix, dovecot-imapd, dovecot-lmtpd, rspamd)",
            shutil.which("postfix") and shutil.which("dovecot") and shutil.which("rspamd"))
    ports = {"smtp": free_port(), "submission": free_port(), "imap": free_port(), "imaps": free_port()}
    env = {"BERTH_MAIL_SMTP_PORT": str(ports["smtp"]), "BERTH_MAIL_SUBMISSION_PORT": str(ports["submission"]),
           "BERTH_MAIL_IMAP_PORT": str(ports["imap"]), "BERTH_MAIL_IMAPS_PORT": str(ports["imaps"]),
           "BERTH_PUBLIC_IP": "192.0.2.10"}
    server = BerthServer(env=env).start()
    live = {"server": server, "ports": ports}
    try:
        r = Api(server.api).post("/cloudron/setup", json={"dnsConfig": {"provider": "noop", "domain": ZONE,
                                                                          "config": {}}})
        assert r.status_code == 200, r.text
        api = activate(server)
        # The first start of the mail server takes a while (rspamd compiles its rules).
        r = requests.post(f"{server.api}/mail/{ZONE}/enable", json={"enabled": True},
                          headers={"Authorization": f"Bearer {api.token}"}, timeout=300)
        require(f"a working mail server (enabling answered {r.status_code} {r.text[:300]})", r.status_code == 202)
        live["api"] = api
        yield live
    finally:
        if os.path.isdir(os.path.join(server.data_dir, "mail")):
            mail_server_of(live).stop()   # the mail server outlives Berth by design
        server.cleanup()


def new_user(api):
    name = unique("lu")
    r = api.post("/users", json={"username": name, "email": f"{name}@elsewhere.test", "password": PASSWORD})
    assert r.status_code == 201, r.text
    return r.json()


def add_mailbox(api, name, owner_id, owner_type="user"):
    r = api.post(f"/mail/{ZONE}/mailboxes", json={"name": name, "ownerId": owner_id, "ownerType": owner_type})
    assert r.status_code == 201, r.text


def send(live, rcpt):
    return mail_client.send(live["ports"]["smtp"], "someone@elsewhere.test", rcpt)


def imap_login(live, login, password=PASSWORD):
    return mail_client.imap_login("127.0.0.1", live["ports"]["imap"], login, password)


def wait_in_inbox(live, login, subject, timeout=90):
    return mail_client.wait_in_inbox("127.0.0.1", live["ports"]["imap"], login, PASSWORD, subject, timeout)


def maildir(live, name):
    return os.path.join(live["server"].data_dir, "mail", "vmail", ZONE, name)


def refused_login(live, login):
    with pytest.raises(imaplib.IMAP4.error):
        imap_login(live, login)
    return True


# ---- deleteMails ------------------------------------------------------------------------------------------

def test_removing_a_mailbox_deletes_its_mail_only_with_delete_mails(live):
    api = live["api"]
    user = new_user(api)
    for name in ("dropped", "kept"):
        add_mailbox(api, name, user["id"])
        assert wait_in_inbox(live, f"{name}@{ZONE}", send(live, f"{name}@{ZONE}"))
        assert os.path.isdir(maildir(live, name))

    r = api.delete(f"/mail/{ZONE}/mailboxes/dropped", json={"deleteMails": True})
    assert r.status_code == 201, r.text
    assert not os.path.exists(maildir(live, "dropped"))
    kept_subject = send(live, f"kept@{ZONE}")
    assert wait_in_inbox(live, f"kept@{ZONE}", kept_subject)
    r = api.delete(f"/mail/{ZONE}/mailboxes/kept", json={"deleteMails": False})
    assert r.status_code == 201, r.text
    assert os.path.isdir(maildir(live, "kept"))
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send(live, f"kept@{ZONE}")                     # the address is gone, its mail is not

    # The same names again: "kept" finds its old mail, "dropped" starts empty.
    add_mailbox(api, "kept", user["id"])
    assert wait_in_inbox(live, f"kept@{ZONE}", kept_subject)
    add_mailbox(api, "dropped", user["id"])
    imap = imap_login(live, f"dropped@{ZONE}")
    try:
        imap.select("INBOX")
        assert imap.search(None, "ALL")[1][0].split() == []
    finally:
        imap.logout()
    removed = [e["data"] for e in api.get("/cloudron/eventlog", params={"action": "mail.box.remove"}).json()[
        "eventlogs"]]
    assert {"domain": ZONE, "name": "dropped", "deleteMails": True} in removed


# ---- owners deleted ---------------------------------------------------------------------------------------

def test_a_deleted_users_mailbox_keeps_its_mail_refuses_logins_until_given_a_new_owner(live):
    api = live["api"]
    leaver, successor = new_user(api), new_user(api)
    add_mailbox(api, "leaver", leaver["id"])
    first = send(live, f"leaver@{ZONE}")
    assert wait_in_inbox(live, f"leaver@{ZONE}", first)

    assert api.delete(f"/users/{leaver['id']}").status_code in (200, 204)
    assert refused_login(live, f"leaver@{ZONE}") and refused_login(live, leaver["username"])
    got = api.get(f"/mail/{ZONE}/mailboxes/leaver")
    assert got.status_code == 200 and got.json()["mailbox"]["ownerId"] == leaver["id"], got.text
    second = send(live, f"leaver@{ZONE}")            # still accepted: the mailbox is there

    r = api.post(f"/mail/{ZONE}/mailboxes/leaver", json={"ownerId": successor["id"], "ownerType": "user"})
    assert r.status_code == 204, r.text
    assert wait_in_inbox(live, f"leaver@{ZONE}", first) and wait_in_inbox(live, f"leaver@{ZONE}", second)


def test_a_deleted_groups_mailbox_stays_and_its_former_members_cannot_log_in(live):
    api = live["api"]
    member = new_user(api)
    group = api.post("/groups", json={"name": unique("lg")}).json()
    assert api.put(f"/groups/{group['id']}/members", json={"userIds": [member["id"]]}).status_code in (200, 204)
    add_mailbox(api, "team-box", group["id"], "group")
    subject = send(live, f"team-box@{ZONE}")
    assert wait_in_inbox(live, f"team-box@{ZONE}", subject)

    assert api.delete(f"/groups/{group['id']}").status_code in (200, 204)
    assert refused_login(live, f"team-box@{ZONE}")
    assert api.get(f"/mail/{ZONE}/mailboxes/team-box").json()["mailbox"]["ownerType"] == "group"
    send(live, f"team-box@{ZONE}")
    r = api.post(f"/mail/{ZONE}/mailboxes/team-box", json={"ownerId": member["id"], "ownerType": "user"})
    assert r.status_code == 204, r.text
    assert wait_in_inbox(live, f"team-box@{ZONE}", subject)


# ---- restart ----------------------------------------------------------------------------------------------

def smtp_answers(live):
    try:
        with smtplib.SMTP("127.0.0.1", live["ports"]["smtp"], timeout=5) as smtp:
            return smtp.noop()[0] == 250
    except (OSError, smtplib.SMTPException):
        return False


def test_after_a_restart_with_the_mail_server_down_berth_brings_it_back(live):
    api, server = live["api"], live["server"]
    user = new_user(api)
    add_mailbox(api, "survivor", user["id"])
    before = send(live, f"survivor@{ZONE}")
    assert wait_in_inbox(live, f"survivor@{ZONE}", before)

    # A reboot: Berth and every process of its mail server are gone.
    server.stop()
    mail_server_of(live).stop()
    assert not smtp_answers(live)

    started = time.monotonic()
    server.start()
    assert time.monotonic() - started < 15, "the server's start waited for the mail server"
    deadline = time.monotonic() + 300                # the first health check, then rspamd's start
    while not smtp_answers(live):
        assert time.monotonic() < deadline, "the mail server did not come back:\n" + server.log()
        time.sleep(0.5)
    after = send(live, f"survivor@{ZONE}")
    assert wait_in_inbox(live, f"survivor@{ZONE}", after) and wait_in_inbox(live, f"survivor@{ZONE}", before)
    assert api.get("/cloudron/status").status_code == 200


def test_a_mail_daemon_that_dies_while_berth_runs_is_brought_back(live):
    api = live["api"]
    deadline = time.monotonic() + 300       # a previous test's restore may still be starting rspamd
    while not mail_server_of(live).status()["running"]:
        assert time.monotonic() < deadline, mail_server_of(live).status()
        time.sleep(0.5)
    time.sleep(11)      # one health check period: the start-up restore is over, healing is what is left
    os.kill(mail_server_of(live).status()["processes"]["postfix"]["pid"], 9)   # postfix's master
    deadline = time.monotonic() + 120       # the next health check (every few seconds), then a start
    while not (mail_server_of(live).status()["running"] and smtp_answers(live)):
        assert time.monotonic() < deadline, "postfix was not brought back:\n" + live["server"].log()
        time.sleep(0.5)
    events = api.get("/cloudron/eventlog", params={"actions": "service.restart", "per_page": 20}).json()["eventlogs"]
    assert any(e["data"].get("id") == "mail" for e in events), events
    user = new_user(api)
    add_mailbox(api, "phoenix", user["id"])
    subject = send(live, f"phoenix@{ZONE}")
    assert wait_in_inbox(live, f"phoenix@{ZONE}", subject)
