"""The sendmail and recvmail addons and configure/mailbox, end to end: a Berth server with mail
enabled on example.test (its own Postfix + Dovecot on private ports) installs the test app
(tests/support/images.py) declaring the addons; the test reads the variables from the container,
checks from inside it that the mail server answers at the address and port it was given, and
speaks SMTP submission and IMAP with the app's credentials to that same address (the app image
has busybox but no TLS client, and submission requires STARTTLS before AUTH).
"""
import email.message
import imaplib
import shutil
import smtplib
import uuid

import pytest
import requests

from support.apps_env import DOMAIN, AppsBerth, unique
from support.harness import free_port, require
from support.mail_client import imap_login, send, tls, wait_in_inbox

PASSWORD = "Pass-word-1"
SENDMAIL_VARS = {"CLOUDRON_MAIL_SMTP_SERVER", "CLOUDRON_MAIL_SMTP_PORT", "CLOUDRON_MAIL_SMTPS_PORT",
                 "CLOUDRON_MAIL_SMTP_USERNAME", "CLOUDRON_MAIL_SMTP_PASSWORD", "CLOUDRON_MAIL_FROM",
                 "CLOUDRON_MAIL_DOMAIN"}
RECVMAIL_VARS = {"CLOUDRON_MAIL_IMAP_SERVER", "CLOUDRON_MAIL_IMAP_PORT", "CLOUDRON_MAIL_IMAPS_PORT",
                 "CLOUDRON_MAIL_IMAP_USERNAME", "CLOUDRON_MAIL_IMAP_PASSWORD", "CLOUDRON_MAIL_TO",
                 "CLOUDRON_MAIL_DOMAIN"}


# SQLite only: the app mail identity's rows go through the same models whose PostgreSQL behaviour
# tests/api/test_mail.py covers on both databases; a second pass here cost two minutes of suite time.
@pytest.fixture(scope="module", params=["sqlite"])
def env(request, parts, tmp_path_factory):
    require("Postfix and Dovecot (Debian packages postfix, dovecot-imapd, dovecot-lmtpd)",
            shutil.which("postfix") and shutil.which("dovecot"))
    url = request.getfixturevalue("postgres").new_database() if request.param == "postgresql" else None
    berth = AppsBerth(parts["image"], parts["catalog"], parts["docker"], str(tmp_path_factory.mktemp("app-mail")),
                      database_url=url)
    ports = {"smtp": free_port(), "submission": free_port(), "imap": free_port(), "imaps": free_port()}
    berth.env.update({"BERTH_MAIL_SMTP_PORT": str(ports["smtp"]),
                      "BERTH_MAIL_SUBMISSION_PORT": str(ports["submission"]),
                      "BERTH_MAIL_IMAP_PORT": str(ports["imap"]), "BERTH_MAIL_IMAPS_PORT": str(ports["imaps"]),
                      "BERTH_PUBLIC_IP": "192.0.2.10"})
    berth.ports = ports
    try:
        berth.start()
        # The first start of the mail server takes a while (rspamd compiles its rules).
        r = requests.post(f"{berth.server.api}/mail/{DOMAIN}/enable", json={"enabled": True},
                          headers={"Authorization": f"Bearer {berth.api.token}"}, timeout=300)
        require(f"a working mail server (enabling answered {r.status_code} {r.text[:300]})", r.status_code == 202)
        yield berth
    finally:
        import mail_server
        try:
            mail_server.MailServer(berth.data_dir, ports["smtp"], ports["submission"], ports["imap"],
                                   ports["imaps"]).stop()
        finally:
            berth.close()


@pytest.fixture(scope="module")
def bob(env):
    """A user with the mailbox bob@example.test."""
    name = unique("bob")
    r = env.api.post("/users", json={"username": name, "email": f"{name}@elsewhere.test", "password": PASSWORD,
                                     "role": "user"})
    assert r.status_code == 201, r.text
    r = env.api.post(f"/mail/{DOMAIN}/mailboxes", json={"name": "bob", "ownerId": r.json()["id"], "ownerType": "user"})
    assert r.status_code == 201, r.text
    return f"bob@{DOMAIN}"


def install(env, location, addons):
    """Install the test app with `addons`; (app id, install task id)."""
    r = env.request_install(location, env.manifest(addons=addons))
    assert r.status_code == 202, r.text
    task = env.wait_task(r.json()["taskId"])
    assert task["success"], (task, env.task_log(task["id"])[-3000:])
    assert env.app(r.json()["id"])["installationState"] == "installed"
    return r.json()["id"], task["id"]


def container_env(env, app_id):
    return dict(item.split("=", 1) for item in env.container(app_id)["Config"]["Env"])


def submit(host, port, login, password, sender, rcpt):
    """Authenticated submission (STARTTLS, AUTH); the subject of the message sent."""
    subject = f"app mail {uuid.uuid4().hex[:8]}"
    msg = email.message.EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, rcpt, subject
    msg.set_content("hello from the app\n")
    with smtplib.SMTP(host, int(port), timeout=20) as smtp:
        smtp.starttls(context=tls())
        smtp.login(login, password)
        smtp.send_message(msg)
    return subject


def send_in(env, rcpt):
    """Mail from outside to `rcpt`, through port 25."""
    return send(env.ports["smtp"], "someone@elsewhere.test", rcpt, f"to the app {uuid.uuid4().hex[:8]}",
                "hello app\n")


def bridge_gateway(env, network="bridge"):
    return env.docker.api.inspect_network(network)["IPAM"]["Config"][0]["Gateway"]


def test_sendmail_app_gets_the_variables_and_its_mail_arrives(env, bob):
    location = unique("sm")
    app_id, task_id = install(env, location, {"sendmail": {}})
    got = container_env(env, app_id)
    assert SENDMAIL_VARS <= set(got) and not (RECVMAIL_VARS - SENDMAIL_VARS) & set(got), got
    address = f"{location}.app@{DOMAIN}"
    assert (got["CLOUDRON_MAIL_FROM"], got["CLOUDRON_MAIL_SMTP_USERNAME"], got["CLOUDRON_MAIL_DOMAIN"]) == \
        (address, address, DOMAIN)
    host, port = got["CLOUDRON_MAIL_SMTP_SERVER"], got["CLOUDRON_MAIL_SMTP_PORT"]
    assert (host, port) == (bridge_gateway(env), str(env.ports["submission"]))
    assert len(got["CLOUDRON_MAIL_SMTP_PASSWORD"]) >= 32
    log = env.task_log(task_id)
    assert address in log and got["CLOUDRON_MAIL_SMTP_PASSWORD"] not in log

    # From inside the container, the mail server answers at the address and port given.
    container = env.docker.containers.get(env.container(app_id)["Id"])
    code, out = container.exec_run(["sh", "-c", 'echo QUIT | nc -w 5 "$CLOUDRON_MAIL_SMTP_SERVER" '
                                                '"$CLOUDRON_MAIL_SMTP_PORT"'])
    assert code == 0 and out.decode().startswith("220 "), out

    # Submission with the app's credentials: the mail lands in bob's mailbox.
    subject = submit(host, port, got["CLOUDRON_MAIL_SMTP_USERNAME"], got["CLOUDRON_MAIL_SMTP_PASSWORD"],
                     got["CLOUDRON_MAIL_FROM"], bob)
    assert wait_in_inbox("127.0.0.1", env.ports["imap"], bob, PASSWORD, subject)

    # A wrong password is refused; the app may not send as someone else's address.
    with pytest.raises(smtplib.SMTPAuthenticationError):
        submit(host, port, address, "wrong-password-0123456789", address, bob)
    with pytest.raises((smtplib.SMTPSenderRefused, smtplib.SMTPRecipientsRefused)):
        submit(host, port, address, got["CLOUDRON_MAIL_SMTP_PASSWORD"], bob, bob)
    # The sendmail password opens no mailbox over IMAP.
    with pytest.raises(imaplib.IMAP4.error):
        imap_login("127.0.0.1", env.ports["imap"], address, got["CLOUDRON_MAIL_SMTP_PASSWORD"])

    # Uninstall: the identity is gone (its login fails) and the address is free again.
    task = env.run(env.api.post(f"/apps/{app_id}/uninstall"))
    assert task["success"], task
    with pytest.raises(smtplib.SMTPAuthenticationError):
        submit(host, port, address, got["CLOUDRON_MAIL_SMTP_PASSWORD"], address, bob)
    user = env.api.get("/users").json()["users"][0]["id"]
    r = env.api.post(f"/mail/{DOMAIN}/mailboxes", json={"name": f"{location}.app", "ownerId": user,
                                                         "ownerType": "user"})
    assert r.status_code == 201, r.text


def test_sendmail_on_a_domain_without_mail_still_sends(env, bob):
    """Cloudron gives sendmail's variables whatever the domain's mail settings, and so does Berth:
    the app's mail leaves through the server (running for example.test) as its own address."""
    other = f"{unique('nomail')}.test".lower()
    assert env.api.post("/domains", json={"domain": other, "provider": "noop", "config": {}}).status_code == 201
    assert env.api.get(f"/mail/{other}").json()["enabled"] is False
    location = unique("sm")
    r = env.request_install(location, env.manifest(addons={"sendmail": {}}), domain=other)
    assert r.status_code == 202, r.text
    task = env.wait_task(r.json()["taskId"])
    assert task["success"], (task, env.task_log(task["id"])[-3000:])
    got = container_env(env, r.json()["id"])
    assert (got["CLOUDRON_MAIL_FROM"], got["CLOUDRON_MAIL_DOMAIN"]) == (f"{location}.app@{other}", other)
    subject = submit(got["CLOUDRON_MAIL_SMTP_SERVER"], got["CLOUDRON_MAIL_SMTP_PORT"],
                     got["CLOUDRON_MAIL_SMTP_USERNAME"], got["CLOUDRON_MAIL_SMTP_PASSWORD"],
                     got["CLOUDRON_MAIL_FROM"], bob)
    assert wait_in_inbox("127.0.0.1", env.ports["imap"], bob, PASSWORD, subject)
    assert env.run(env.api.post(f"/apps/{r.json()['id']}/uninstall"))["success"]


@pytest.fixture(scope="module")
def receiver(env):
    """An app with sendmail and recvmail."""
    location = unique("rm")
    app_id, _ = install(env, location, {"sendmail": {}, "recvmail": {}})
    return app_id, location


def test_recvmail_app_reads_its_mail_over_imap_with_its_own_credentials(env, bob, receiver):
    app_id, location = receiver
    got = container_env(env, app_id)
    assert (SENDMAIL_VARS | RECVMAIL_VARS) <= set(got), got
    address = f"{location}.app@{DOMAIN}"
    assert (got["CLOUDRON_MAIL_TO"], got["CLOUDRON_MAIL_IMAP_USERNAME"]) == (address, address)
    host, port = got["CLOUDRON_MAIL_IMAP_SERVER"], got["CLOUDRON_MAIL_IMAP_PORT"]
    assert (host, port, got["CLOUDRON_MAIL_IMAPS_PORT"]) == (bridge_gateway(env), str(env.ports["imap"]),
                                                            str(env.ports["imaps"]))
    assert got["CLOUDRON_MAIL_IMAP_PASSWORD"] != got["CLOUDRON_MAIL_SMTP_PASSWORD"]
    container = env.docker.containers.get(env.container(app_id)["Id"])
    code, out = container.exec_run(["sh", "-c", 'echo "a LOGOUT" | nc -w 5 "$CLOUDRON_MAIL_IMAP_SERVER" '
                                                '"$CLOUDRON_MAIL_IMAP_PORT"'])
    assert code == 0 and out.decode().startswith("* OK"), out

    subject = send_in(env, got["CLOUDRON_MAIL_TO"])
    assert wait_in_inbox(host, port, got["CLOUDRON_MAIL_IMAP_USERNAME"], got["CLOUDRON_MAIL_IMAP_PASSWORD"], subject)
    for wrong in ("wrong-password-0123456789", got["CLOUDRON_MAIL_SMTP_PASSWORD"]):
        with pytest.raises(imaplib.IMAP4.error):
            imap_login(host, port, address, wrong)

    # The app's address is its own: nobody can take it as a mailbox, an alias or a list.
    user = env.api.get("/users").json()["users"][0]["id"]
    r = env.api.post(f"/mail/{DOMAIN}/mailboxes", json={"name": f"{location}.app", "ownerId": user,
                                                         "ownerType": "user"})
    assert r.status_code == 409, r.text


def test_configure_mailbox_validates_and_moves_the_address(env, bob, receiver):
    app_id, location = receiver
    path = f"/apps/{app_id}/configure/mailbox"
    r = env.api.post(path, json={"mailboxName": "no spaces"})
    assert r.status_code == 400 and "mailboxName" in r.json()["message"], r.text
    r = env.api.post(path, json={"mailboxName": "ok", "mailboxDomain": "no-such-domain.test"})
    assert r.status_code == 404, r.text
    r = env.api.post(path, json={"mailboxName": "bob"})        # bob's mailbox
    assert r.status_code == 409, r.text
    before = container_env(env, app_id)
    assert before["CLOUDRON_MAIL_FROM"] == f"{location}.app@{DOMAIN}"   # nothing refused changed it

    name = unique("news")
    task = env.run(env.api.post(path, json={"mailboxName": name}))
    assert task["success"], task
    got = container_env(env, app_id)
    address = f"{name}@{DOMAIN}"
    assert (got["CLOUDRON_MAIL_FROM"], got["CLOUDRON_MAIL_TO"], got["CLOUDRON_MAIL_SMTP_USERNAME"]) == \
        (address, address, address)
    shown = env.api.get(f"/apps/{app_id}").json()
    assert (shown["mailboxName"], shown["mailboxDomain"]) == (name, DOMAIN), shown
    host, port = got["CLOUDRON_MAIL_SMTP_SERVER"], got["CLOUDRON_MAIL_SMTP_PORT"]
    subject = submit(host, port, address, got["CLOUDRON_MAIL_SMTP_PASSWORD"], address, bob)
    assert wait_in_inbox("127.0.0.1", env.ports["imap"], bob, PASSWORD, subject)
    subject = send_in(env, address)
    assert wait_in_inbox(got["CLOUDRON_MAIL_IMAP_SERVER"], got["CLOUDRON_MAIL_IMAP_PORT"], address,
                         got["CLOUDRON_MAIL_IMAP_PASSWORD"], subject)
    # The old address and the old passwords are gone.
    with pytest.raises(smtplib.SMTPAuthenticationError):
        submit(host, port, before["CLOUDRON_MAIL_SMTP_USERNAME"], before["CLOUDRON_MAIL_SMTP_PASSWORD"],
               before["CLOUDRON_MAIL_FROM"], bob)
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send_in(env, before["CLOUDRON_MAIL_TO"])

    # Back to the default.
    task = env.run(env.api.post(path, json={"mailboxName": None}))
    assert task["success"], task
    assert container_env(env, app_id)["CLOUDRON_MAIL_FROM"] == f"{location}.app@{DOMAIN}"
    assert env.api.get(f"/apps/{app_id}").json()["mailboxName"] == f"{location}.app"
    # A default address follows the app when it moves.
    moved = unique("moved")
    task = env.run(env.api.post(f"/apps/{app_id}/configure/location", json={"location": moved, "domain": DOMAIN}))
    assert task["success"], task
    assert container_env(env, app_id)["CLOUDRON_MAIL_FROM"] == f"{moved}.app@{DOMAIN}"
