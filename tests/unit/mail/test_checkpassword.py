"""mail.checkpassword, the program Dovecot runs for every IMAP and submission login, run as Dovecot
runs it (credentials on file descriptor 3, the reply program as last argument) against a throw-away
SQLite database: owner's password or app password in, deactivated/deleted users and wrong passwords
out, group mailboxes open to the group's members, the username resolved to the mailbox address."""
import json
import subprocess
import sys
import uuid

import pytest


@pytest.fixture
def db(db):
    """tests/unit/conftest.py's database, plus what Dovecot hands the program: the settings file
    naming that database (auth.json) and a reply program that records who was let in."""
    from core import config
    auth = db / "auth.json"
    auth.write_text(json.dumps({"BERTH_DATA_DIR": str(db), "BERTH_DATABASE_URL": config.get().database_url}))
    reply = db / "reply"
    reply.write_text(f"#!/bin/sh\necho \"$USER $AUTHORIZED\" > {db}/replied\n")
    reply.chmod(0o755)
    return db


def make_user(username, password="Pass-word-1", active=True):
    from accounts import passwords
    from models import User
    return User.create(id=f"uid-{uuid.uuid4()}", username=username, email=f"{username}@elsewhere.test",
                       password_hash=passwords.hash_password(password), active=active)


def make_world():
    """Domain mail.test (enabled) with alice's mailbox, a group mailbox, and off.test (not enabled)."""
    from models import Domain, Group, GroupMember
    from models.mail import MAILBOX, MailAddress, MailDomain
    for name, enabled in (("mail.test", True), ("off.test", False)):
        Domain.create(domain=name, zone_name=name, provider="noop", fallback_cert="-", fallback_key="-")
        MailDomain.create(domain=name, enabled=enabled)
    alice, bob = make_user("alice"), make_user("bob")
    team = Group.create(id=f"gid-{uuid.uuid4()}", name="team")
    GroupMember.create(group=team, user=bob)
    MailAddress.create(name="alice", domain="mail.test", type=MAILBOX, owner_id=alice.id, owner_type="user")
    MailAddress.create(name="team", domain="mail.test", type=MAILBOX, owner_id=team.id, owner_type="group")
    MailAddress.create(name="alice", domain="off.test", type=MAILBOX, owner_id=alice.id, owner_type="user")
    return alice, bob


def run(tmp, login, password, env=None):
    """Run the program as Dovecot does; returns (exit code, what the reply program saw or None)."""
    replied = tmp / "replied"
    if replied.exists():
        replied.unlink()
    data = login.encode() + b"\0" + password.encode() + b"\0" + b"1700000000\0"
    # fd 3 is the credentials, as Dovecot passes them: the shell moves its stdin there.
    argv = [sys.executable, "-m", "mail.checkpassword", str(tmp / "auth.json"), str(tmp / "reply")]
    proc = subprocess.run(["/bin/sh", "-c", 'exec "$0" "$@" 3<&0 </dev/null', *argv], input=data, cwd="/",
                          env={"PATH": "/usr/bin:/bin", **(env or {})}, capture_output=True, timeout=60)
    return proc.returncode, (replied.read_text().strip() if replied.exists() else None)


def test_owner_logs_in_with_address_or_username_and_gets_the_address(db):
    make_world()
    assert run(db, "alice@mail.test", "Pass-word-1") == (0, "alice@mail.test")
    assert run(db, "Alice@Mail.Test", "Pass-word-1") == (0, "alice@mail.test")
    assert run(db, "alice", "Pass-word-1") == (0, "alice@mail.test")


def test_wrong_password_unknown_mailbox_and_disabled_domain_fail(db):
    make_world()
    assert run(db, "alice@mail.test", "wrong-password")[0] == 1
    assert run(db, "nobody@mail.test", "Pass-word-1")[0] == 1
    assert run(db, "alice@off.test", "Pass-word-1")[0] == 1     # mail not enabled there
    assert run(db, "alice@mail.test", "")[0] == 1


def test_app_password_for_mail_works_and_others_do_not(db):
    from accounts.tokens import hash_secret
    from models import AppPassword
    alice, _ = make_world()
    AppPassword.create(id="ap1", user=alice, name="phone", identifier="mail", password_hash=hash_secret("app-secret-1"))
    AppPassword.create(id="ap2", user=alice, name="wiki", identifier="some-app", password_hash=hash_secret("app-2"))
    assert run(db, "alice@mail.test", "app-secret-1") == (0, "alice@mail.test")
    assert run(db, "alice@mail.test", "app-2")[0] == 1


def test_deactivated_or_deleted_owner_cannot_log_in(db):
    from models import User
    from models.mail import MailAddress
    alice, _ = make_world()
    alice.active = False
    alice.save()
    assert run(db, "alice@mail.test", "Pass-word-1")[0] == 1
    assert run(db, "alice", "Pass-word-1")[0] == 1
    User.delete().where(User.id == alice.id).execute()
    assert MailAddress.select().where(MailAddress.owner_id == alice.id).exists()   # the mailbox stays
    assert run(db, "alice@mail.test", "Pass-word-1")[0] == 1


def test_inactive_mailbox_refuses_its_owner(db):
    from models.mail import MailAddress
    make_world()
    MailAddress.update(active=False).where(MailAddress.name == "alice").execute()
    assert run(db, "alice@mail.test", "Pass-word-1")[0] == 1


def test_group_mailbox_is_open_to_members_with_their_own_password(db):
    make_world()
    assert run(db, "team@mail.test", "Pass-word-1") == (0, "team@mail.test")   # bob, a member
    make_user("carol", password="Carol-pass-1")
    assert run(db, "team@mail.test", "Carol-pass-1")[0] == 1                     # not a member


def test_userdb_lookup_answers_existence_without_a_password(db):
    make_world()
    assert run(db, "alice@mail.test", "", env={"AUTHORIZED": "1"}) == (0, "alice@mail.test 2")
    assert run(db, "nobody@mail.test", "", env={"AUTHORIZED": "1"})[0] == 3


def test_database_trouble_is_a_temporary_failure_never_a_yes(db):
    make_world()
    (db / "auth.json").write_text(json.dumps({"BERTH_DATA_DIR": str(db),
                                              "BERTH_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}))
    assert run(db, "alice@mail.test", "Pass-word-1") == (111, None)


def test_program_is_importable_from_anywhere():
    """Dovecot runs it with / as the working directory: the package must resolve from there."""
    r = subprocess.run([sys.executable, "-c", "import mail.checkpassword as c; print(c.__file__)"], cwd="/",
                       capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    # (Which checkout it resolves to is the installation's business: a copy of the tree run with
    # another checkout's virtualenv finds that one's.)
    assert r.returncode == 0 and r.stdout.strip().endswith("/mail/checkpassword.py"), r.stderr


def test_directory_user_logs_in_to_mail_with_the_directory_password(db):
    """An external LDAP user has no password hash here: the program binds to a real slapd."""
    from support import slapd
    from support.harness import require
    require("slapd (Debian packages slapd, ldap-utils)", slapd.available())
    import eventlog
    from accounts import external_ldap
    from models import Domain, User
    from models.mail import MAILBOX, MailAddress, MailDomain
    directory = slapd.Slapd(users=[{"uid": "dora", "password": "Dora-ldap-pw-1", "mail": "dora@dir.test"}],
                            groups={}).start()
    try:
        external_ldap.set_config(eventlog.Actor(), {
            "provider": "other", "url": directory.url, "baseDn": f"ou=people,{directory.base}",
            "filter": "(objectClass=inetOrgPerson)", "usernameField": "uid", "bindDn": directory.reader_dn,
            "bindPassword": directory.reader_password})
        dora = User.create(id="uid-dora", username="dora", email="dora@dir.test", source=external_ldap.SOURCE,
                           password_hash=None)
        Domain.create(domain="mail.test", zone_name="mail.test", provider="noop", fallback_cert="-", fallback_key="-")
        MailDomain.create(domain="mail.test", enabled=True)
        MailAddress.create(name="dora", domain="mail.test", type=MAILBOX, owner_id=dora.id, owner_type="user")
        assert run(db, "dora@mail.test", "Dora-ldap-pw-1") == (0, "dora@mail.test")
        assert run(db, "dora", "Dora-ldap-pw-1") == (0, "dora@mail.test")
        assert run(db, "dora@mail.test", "wrong-password")[0] == 1
        directory.stop()                      # unreachable directory: refused, never let in
        assert run(db, "dora@mail.test", "Dora-ldap-pw-1")[0] == 1
    finally:
        directory.stop()
