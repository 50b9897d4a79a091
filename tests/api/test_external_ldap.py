"""External LDAP directory over HTTP against a real slapd (tests/support/slapd.py): the config is
checked by a bind before it is saved, the bind password is masked and sealed at rest, the sync task
imports users and groups, and imported users log in by binding to the directory."""
import glob
import os
import time

import ldap3
import pytest

from support import slapd
from support.harness import Api, BerthServer, activate, free_port, require

MASK = "\u25cf" * 8
USERS = [
    {"uid": "alice", "password": "Alice-ldap-pw-1", "mail": "alice@dir.example", "displayName": "Alice Liddell"},
    {"uid": "bob", "password": "Bob-ldap-pw-1", "mail": "bob@dir.example", "cn": "Bob Builder"},
    {"uid": "nomail", "password": "Nomail-pw-1"},                                  # no mail: skipped
    {"uid": "owner", "password": "Owner-ldap-pw-1", "mail": "owner@dir.example"},  # a local user's name
]
GROUPS = {"devs": ["alice", "bob"], "ops": ["alice"]}


@pytest.fixture(scope="module")
def directory():
    require("slapd (Debian packages slapd, ldap-utils)", slapd.available())
    server = slapd.Slapd(users=USERS, groups=GROUPS).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server():
    srv = BerthServer(env={"BERTH_RATE_LIMIT": "0"}).start()
    yield srv
    srv.cleanup()


@pytest.fixture(scope="module")
def owner(server):
    return activate(server)


def _config(directory, **changes):
    cfg = {"provider": "other", "url": directory.url, "baseDn": f"ou=people,{directory.base}",
           "filter": "(objectClass=inetOrgPerson)", "usernameField": "uid",
           "bindDn": directory.reader_dn, "bindPassword": directory.reader_password,
           "syncGroups": True, "groupBaseDn": f"ou=groups,{directory.base}",
           "groupFilter": "(objectClass=groupOfNames)", "groupnameField": "cn", "autoCreate": False}
    cfg.update(changes)
    return cfg


def _wait_task(api, task_id, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        task = api.get(f"/tasks/{task_id}").json()
        if not task["active"] and not task["pending"]:
            return task
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} did not finish")


def _login(server, username, password):
    return Api(server.api).post("/cloudron/login", json={"username": username, "password": password})


def _users(owner):
    return {u["username"]: u for u in owner.get("/users", params={"per_page": 100}).json()["users"]}


def test_bad_bind_and_unreachable_server_are_refused_and_nothing_saved(owner, directory):
    r = owner.post("/settings/external_ldap_config", json=_config(directory, bindPassword="wrong-password"))
    assert r.status_code == 400, r.text
    assert "invalidCredentials" in r.json()["message"]
    r = owner.post("/settings/external_ldap_config", json=_config(directory, url=f"ldap://127.0.0.1:{free_port()}"))
    assert r.status_code == 424, r.text
    r = owner.post("/settings/external_ldap_config", json=_config(directory, baseDn="ou=nowhere,dc=example,dc=test"))
    assert r.status_code == 400 and r.json()["message"].startswith("baseDn:"), r.text
    r = owner.post("/settings/external_ldap_config", json=_config(directory, bindPassword=""))
    assert r.status_code == 400 and r.json()["message"].startswith("bindPassword:"), r.text
    assert owner.get("/settings/external_ldap_config").json() == {"provider": "noop"}
    assert owner.post("/cloudron/sync_external_ldap").status_code == 409


def test_good_config_is_saved_masked_and_sealed_at_rest(owner, directory, server):
    r = owner.post("/settings/external_ldap_config", json=_config(directory))
    assert r.status_code == 200, r.text
    shown = owner.get("/settings/external_ldap_config").json()
    assert shown["bindPassword"] == MASK
    assert {k: shown[k] for k in ("url", "bindDn", "groupBaseDn", "syncGroups")} == {
        "url": directory.url, "bindDn": directory.reader_dn, "groupBaseDn": f"ou=groups,{directory.base}",
        "syncGroups": True}
    # The mask sent back keeps the stored password (the bind check passes with it).
    assert owner.post("/settings/external_ldap_config", json=shown).status_code == 200, shown
    # Nowhere in clear: not in the database, the server log or the event log.
    secret = directory.reader_password.encode()
    for path in glob.glob(os.path.join(server.data_dir, "**", "*"), recursive=True):
        if os.path.isfile(path):
            with open(path, "rb") as f:
                assert secret not in f.read(), path
    assert directory.reader_password not in owner.get("/cloudron/eventlog", params={"per_page": 100}).text


def test_sync_imports_users_and_groups(owner, directory):
    r = owner.post("/cloudron/sync_external_ldap")
    assert r.status_code == 202, r.text
    task = _wait_task(owner, r.json()["taskId"])
    assert task["success"], task
    log = owner.get(f"/tasks/{task['id']}/logs", params={"lines": -1, "format": "plain"}).text
    assert "Created user alice" in log and "Skipping owner: a local user has this username" in log, log
    assert "no uid or no mail" in log and "progress: 100%" in log, log

    users = _users(owner)
    assert users["alice"]["source"] == "ldap" and users["alice"]["email"] == "alice@dir.example"
    assert users["alice"]["displayName"] == "Alice Liddell" and users["bob"]["displayName"] == "Bob Builder"
    assert "nomail" not in users
    assert users["owner"]["source"] == "" and users["owner"]["email"] == "owner@example.com"
    groups = {g["name"]: g for g in owner.get("/groups").json()["groups"]}
    assert groups["devs"]["source"] == "ldap"
    assert set(groups["devs"]["userIds"]) == {users["alice"]["id"], users["bob"]["id"]}
    assert groups["ops"]["userIds"] == [users["alice"]["id"]]

    # A change in the directory reaches Berth at the next sync; nothing is duplicated.
    admin = directory.admin()
    assert admin.modify(directory.user_dn("bob"), {"mail": [(ldap3.MODIFY_REPLACE, ["bob@new.example"])]})
    assert admin.modify(f"cn=ops,ou=groups,{directory.base}",
                        {"member": [(ldap3.MODIFY_ADD, [directory.user_dn("bob")])]})
    task = _wait_task(owner, owner.post("/cloudron/sync_external_ldap").json()["taskId"])
    assert task["success"], task
    again = _users(owner)
    assert again["bob"]["email"] == "bob@new.example" and again["bob"]["id"] == users["bob"]["id"]
    assert len(again) == len(users)
    ops = {g["name"]: g for g in owner.get("/groups").json()["groups"]}["ops"]
    assert set(ops["userIds"]) == {users["alice"]["id"], users["bob"]["id"]}


def test_imported_user_logs_in_with_the_directory_password(owner, directory, server):
    r = _login(server, "alice", "Alice-ldap-pw-1")
    assert r.status_code == 200, r.text
    assert Api(server.api, r.json()["token"]).get("/profile").json()["username"] == "alice"
    assert _login(server, "alice", "Alice-wrong-pw").status_code == 401
    # An empty password would be an anonymous bind, which LDAP "accepts".
    assert _login(server, "alice", "").status_code in (400, 401)
    # The directory decides: a password changed there works at once, the old one no longer does.
    admin = directory.admin()
    assert admin.modify(directory.user_dn("alice"), {"userPassword": [(ldap3.MODIFY_REPLACE, ["Alice-new-pw-2"])]})
    assert _login(server, "alice", "Alice-ldap-pw-1").status_code == 401
    assert _login(server, "alice", "Alice-new-pw-2").status_code == 200
    # The local owner is untouched by the directory entry that has its name.
    assert _login(server, "owner", "Owner-ldap-pw-1").status_code == 401


def test_profile_of_a_directory_user_is_not_editable_locally(owner):
    alice = _users(owner)["alice"]
    r = owner.post(f"/users/{alice['id']}", json={"email": "alice@elsewhere.example"})
    assert r.status_code == 409, r.text
    r = owner.post(f"/users/{alice['id']}/password", json={"password": "Local-pass-12345"})
    assert r.status_code == 409, r.text
    assert _users(owner)["alice"]["email"] == "alice@dir.example"


def test_auto_create_on_first_login(owner, directory, server):
    admin = directory.admin()
    assert admin.add(directory.user_dn("carol"), "inetOrgPerson",
                     {"cn": "Carol", "sn": "C", "uid": "carol", "mail": "carol@dir.example",
                      "userPassword": "Carol-ldap-pw-1"})
    assert _login(server, "carol", "Carol-ldap-pw-1").status_code == 401   # autoCreate off
    shown = owner.get("/settings/external_ldap_config").json()
    assert owner.post("/settings/external_ldap_config", json=dict(shown, autoCreate=True)).status_code == 200
    assert _login(server, "carol", "Carol-wrong-pw").status_code == 401
    assert "carol" not in _users(owner)
    assert _login(server, "carol", "Carol-ldap-pw-1").status_code == 200
    assert _users(owner)["carol"]["source"] == "ldap"
    # Off again: directory users can no longer log in.
    assert owner.post("/settings/external_ldap_config", json={"provider": "noop"}).status_code == 200
    assert _login(server, "carol", "Carol-ldap-pw-1").status_code == 401
