"""Identity and access through the HTTP API of a real server (SQLite and PostgreSQL)."""
import time

import pytest
import requests

from support.harness import Api, BerthServer, unique


def test_activation_flow(fresh_berth):
    api = Api(fresh_berth.api)
    assert api.get("/cloudron/status").json()["activated"] is False
    bad = api.post("/cloudron/activate", json={"username": "boss", "email": "boss@example.com",
                                               "password": "short"})
    assert bad.status_code == 400 and bad.json()["message"].startswith("password:")
    r = api.post("/cloudron/activate", json={"username": "boss", "email": "boss@example.com",
                                             "password": "Boss-pass-1"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"userId", "token", "expires"}
    assert body["userId"].startswith("uid-") and body["expires"] > time.time() * 1000
    assert api.get("/cloudron/status").json()["activated"] is True
    again = api.post("/cloudron/activate", json={"username": "boss2", "email": "b2@example.com",
                                                 "password": "Boss-pass-1"})
    assert again.status_code == 409 and again.json() == {"status": "Conflict",
                                                         "message": "Cloudron is already activated"}
    me = api.with_token(body["token"]).get("/profile").json()
    assert me["role"] == "owner" and me["admin"] is True and me["username"] == "boss"


def test_token_transports(owner):
    token = owner.token
    assert requests.get(owner.base + "/profile", params={"access_token": token}).status_code == 200
    assert requests.get(owner.base + "/profile", headers={"x-api-key": token}).status_code == 200
    assert requests.get(owner.base + "/profile", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": token}, {"x-api-key": "x"}):
        r = requests.get(owner.base + "/profile", headers=headers)
        assert r.status_code == 401, (headers, r.text)
        assert set(r.json()) == {"status", "message"} and r.json()["status"] == "Unauthorized"


def test_error_body_everywhere(owner):
    r = requests.get(owner.base + "/no/such/route")
    assert r.status_code == 404 and r.json()["status"] == "Not Found"
    r = requests.delete(owner.base + "/cloudron/status")
    assert r.status_code == 405 and r.json()["status"] == "Method Not Allowed"
    r = owner.get("/users", params={"page": 0})
    assert r.status_code == 400 and r.json() == {"status": "Bad Request",
                                                 "message": "page: 0 is less than the minimum of 1"}
    r = owner.request("POST", "/users", data="{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "Failed to parse body" in r.json()["message"]
    r = owner.post("/users", json={"username": "bad name", "email": "x@example.com"})
    assert r.status_code == 400 and r.json()["message"].startswith("username:")


def test_empty_json_body_means_empty_object(owner):
    r = owner.request("POST", "/users", data="", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["message"] == "email: is required"
    r = owner.request("POST", "/groups", data="", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["message"] == "name: is required"


def test_user_crud_and_null_fields(owner):
    name = unique()
    r = owner.post("/users", json={"username": name, "email": f"{name}@Example.com",
                                   "displayName": None, "unknownField": 1, "password": "Pass-word-1"})
    assert r.status_code == 201, r.text
    user = r.json()
    assert user["email"] == f"{name}@example.com" and user["role"] == "user" and user["admin"] is False
    assert "password" not in r.text and "hash" not in r.text
    assert owner.post("/users", json={"username": name, "email": "other@example.com"}).status_code == 409
    assert owner.post("/users", json={"username": unique(), "email": f"{name}@example.com"}).status_code == 409
    r = owner.post(f"/users/{user['id']}", json={"displayName": "Jane Doe", "admin": True})
    assert r.status_code == 204, r.text
    got = owner.get(f"/users/{user['id']}").json()
    assert got["displayName"] == "Jane Doe" and got["role"] == "admin" and got["admin"] is True
    listed = owner.get("/users", params={"search": name}).json()["users"]
    assert [u["id"] for u in listed] == [user["id"]]
    assert owner.delete(f"/users/{user['id']}").status_code == 204
    assert owner.get(f"/users/{user['id']}").status_code == 404


def test_pagination(owner):
    prefix = unique("page")
    for i in range(5):
        assert owner.post("/users", json={"username": f"{prefix}{i}",
                                          "email": f"{prefix}{i}@example.com"}).status_code == 201
    page1 = owner.get("/users", params={"search": prefix, "per_page": 2}).json()["users"]
    page3 = owner.get("/users", params={"search": prefix, "per_page": 2, "page": 3}).json()["users"]
    page9 = owner.get("/users", params={"search": prefix, "per_page": 2, "page": 9}).json()["users"]
    assert [u["username"] for u in page1] == [f"{prefix}0", f"{prefix}1"]
    assert [u["username"] for u in page3] == [f"{prefix}4"]
    assert page9 == []


def test_groups_and_members(owner, make_user):
    user, _ = make_user()
    name = unique("grp")
    r = owner.post("/groups", json={"name": name})
    assert r.status_code == 201 and r.json()["name"] == name
    gid = r.json()["id"]
    assert owner.post("/groups", json={"name": name}).status_code == 409
    assert owner.post("/groups", json={"name": "admins"}).status_code == 400
    assert owner.put(f"/groups/{gid}/members", json={"userIds": [user["id"]]}).status_code == 200
    assert owner.get(f"/groups/{gid}").json()["userIds"] == [user["id"]]
    assert owner.get(f"/users/{user['id']}").json()["groupIds"] == [gid]
    assert owner.put(f"/groups/{gid}/members", json={"userIds": ["uid-missing"]}).status_code == 404
    assert owner.put(f"/users/{user['id']}/groups", json={"groupIds": []}).status_code == 204
    assert owner.get(f"/groups/{gid}").json()["userIds"] == []
    assert owner.post(f"/groups/{gid}", json={"name": name + "r"}).status_code == 200
    assert owner.delete(f"/groups/{gid}").status_code == 204
    assert owner.get(f"/groups/{gid}").status_code == 404


def test_usermanager_cannot_add_or_remove_owner_or_admin_through_group_members(owner, make_user):
    # Finding 14: PUT /users/{owner}/groups was refused, PUT /groups/{gid}/members let it through.
    owner_id = owner.get("/profile").json()["id"]
    admin_user, _ = make_user("admin")
    plain, _ = make_user()
    _, manager = make_user("usermanager")
    gid = owner.post("/groups", json={"name": unique("grp")}).json()["id"]
    denied = manager.put(f"/users/{owner_id}/groups", json={"groupIds": [gid]})
    assert denied.status_code == 403
    r = manager.put(f"/groups/{gid}/members", json={"userIds": [owner_id]})
    assert r.status_code == 403 and r.json()["message"] == denied.json()["message"]
    assert owner.get(f"/groups/{gid}").json()["userIds"] == []
    assert owner.put(f"/groups/{gid}/members", json={"userIds": [admin_user["id"]]}).status_code == 200
    assert manager.put(f"/groups/{gid}/members", json={"userIds": []}).status_code == 403  # removing the admin
    # Members that stay are not changed: a plain user can be added beside the admin.
    r = manager.put(f"/groups/{gid}/members", json={"userIds": [admin_user["id"], plain["id"]]})
    assert r.status_code == 200, r.text
    assert sorted(owner.get(f"/groups/{gid}").json()["userIds"]) == sorted([admin_user["id"], plain["id"]])


def test_roles_enforced(owner, make_user):
    _, plain = make_user("user")
    _, manager = make_user("usermanager")
    admin_user, admin = make_user("admin")
    assert plain.get("/users").status_code == 403
    assert plain.get("/profile").status_code == 200
    assert manager.get("/users").status_code == 200
    assert manager.get("/cloudron/eventlog").status_code == 403
    # a user manager may not touch admins nor hand out roles
    assert manager.post(f"/users/{admin_user['id']}", json={"displayName": "x"}).status_code == 403
    name = unique()
    assert manager.post("/users", json={"username": name, "email": f"{name}@example.com",
                                        "role": "admin"}).status_code == 403
    assert admin.get("/cloudron/eventlog").status_code == 200


def test_last_owner_is_protected(owner):
    me = owner.get("/profile").json()
    assert owner.delete(f"/users/{me['id']}").status_code == 409
    r = owner.post(f"/users/{me['id']}", json={"role": "admin"})
    assert r.status_code == 409
    assert owner.get("/profile").json()["role"] == "owner"


def test_read_only_token(owner):
    r = owner.post("/tokens", json={"name": "reader", "scope": {"*": "r"}})
    assert r.status_code == 201, r.text
    reader = owner.with_token(r.json()["accessToken"])
    assert reader.get("/users").status_code == 200
    denied = reader.post("/groups", json={"name": unique("g")})
    assert denied.status_code == 403 and "read-only" in denied.json()["message"]


def test_tokens_listed_and_revoked(owner):
    r = owner.post("/tokens", json={"name": "ci"})
    created = r.json()
    assert r.status_code == 201 and len(created["accessToken"]) >= 32
    listed = owner.get("/tokens").json()["tokens"]
    entry = next(t for t in listed if t["id"] == created["id"])
    assert "accessToken" not in entry and entry["name"] == "ci"
    ci = owner.with_token(created["accessToken"])
    assert ci.get("/profile").status_code == 200
    assert owner.delete(f"/tokens/{created['id']}").status_code == 204
    assert ci.get("/profile").status_code == 401
    assert owner.get(f"/tokens/{created['id']}").status_code == 404


def test_token_expiry(owner):
    r = owner.post("/tokens", json={"name": "brief", "expiresAt": int(time.time() * 1000) + 1500})
    brief = owner.with_token(r.json()["accessToken"])
    assert brief.get("/profile").status_code == 200
    time.sleep(2)
    r = brief.get("/profile")
    assert r.status_code == 401 and r.json()["message"] == "Token expired"
    past = owner.post("/tokens", json={"name": "old", "expiresAt": 1000})
    assert past.status_code == 400 and past.json()["message"].startswith("expiresAt:")


def test_app_passwords(owner):
    r = owner.post("/app_passwords", json={"name": "phone", "identifier": "mail"})
    assert r.status_code == 201 and len(r.json()["password"]) >= 16
    pid = r.json()["id"]
    listed = owner.get("/app_passwords").json()["appPasswords"]
    assert any(p["id"] == pid and "password" not in p for p in listed)
    assert owner.get(f"/app_passwords/{pid}").json()["identifier"] == "mail"
    assert owner.delete(f"/app_passwords/{pid}").status_code == 204
    assert owner.get(f"/app_passwords/{pid}").status_code == 404


def test_profile_and_own_password(owner, make_user):
    user, api = make_user(password="First-pass-1")
    assert api.post("/profile", json={"displayName": "New Name"}).status_code == 204
    assert api.get("/profile").json()["displayName"] == "New Name"
    wrong = api.post("/profile/password", json={"password": "nope-nope-1", "newPassword": "Second-pass-2"})
    assert wrong.status_code == 412
    weak = api.post("/profile/password", json={"password": "First-pass-1", "newPassword": "aaaaaaaaaa"})
    assert weak.status_code == 400 and weak.json()["message"].startswith("newPassword:")
    ok = api.post("/profile/password", json={"password": "First-pass-1", "newPassword": "Second-pass-2"})
    assert ok.status_code == 204
    login = Api(owner.base).post("/cloudron/login", json={"username": user["username"], "password": "Second-pass-2"})
    assert login.status_code == 200 and login.json()["expiresAt"].endswith("Z")
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
    assert api.post("/profile/avatar", files={"avatar": ("a.png", png, "image/png")}).status_code == 202
    bad = api.post("/profile/avatar", files={"avatar": ("a.txt", b"hello", "text/plain")})
    assert bad.status_code == 400 and bad.json()["message"].startswith("avatar:")


def test_logout_revokes_session(owner, make_user):
    user, api = make_user()
    assert api.get("/cloudron/logout").status_code == 200
    assert api.get("/profile").status_code == 401


def test_invites(owner):
    name = unique()
    user = owner.post("/users", json={"username": name, "email": f"{name}@example.com"}).json()
    assert owner.post(f"/users/{user['id']}/send_invite").status_code == 409
    r = owner.post(f"/users/{user['id']}/create_invite")
    assert r.status_code == 200 and len(r.json()["resetToken"]) == 64


def test_event_log_records_changes(owner):
    name = unique("evt")
    owner.post("/groups", json={"name": name})
    events = owner.get("/cloudron/eventlog", params={"action": "group.add"}).json()["eventlogs"]
    event = next(e for e in events if e["data"].get("name") == name)
    assert event["source"]["username"] == "owner" and event["source"]["ip"] == "127.0.0.1"
    assert event["creationTime"].endswith("Z")
    one = owner.get(f"/cloudron/eventlog/{event['id']}").json()["event"]
    assert one["id"] == event["id"]


def test_event_log_actions_list_takes_spaces_after_commas(owner):
    name = unique("evl")
    owner.post("/groups", json={"name": name})
    owner.post("/users", json={"username": name, "email": f"{name}@example.com"})
    for actions in ("group.add, user.add", " user.add ,group.add ", "group.add,,user.add"):
        events = owner.get("/cloudron/eventlog", params={"actions": actions, "per_page": 200}).json()["eventlogs"]
        mine = {e["action"] for e in events if name in str(e["data"])}
        assert mine == {"group.add", "user.add"}, actions
        assert {e["action"] for e in events} <= {"group.add", "user.add"}


def test_event_log_search_matches_data_source_and_action_case_insensitively(owner, make_user):
    name = unique("srch")
    user = owner.post("/users", json={"username": name, "email": f"{name}.mail@Example.com"}).json()
    owner.post(f"/users/{user['id']}", json={"displayName": "Zoë Zebra"})

    def found(term, **query):
        events = owner.get("/cloudron/eventlog", params={"search": term, "per_page": 200, **query}).json()
        return [e for e in events["eventlogs"] if e["data"].get("userId") == user["id"]]

    assert [e["action"] for e in found(name)] == ["user.add"]                  # username
    assert {e["action"] for e in found(user["id"].upper())} == {"user.add", "user.update"}  # the id
    assert [e["action"] for e in found(f"{name}.MAIL@example.COM")] == ["user.add"]  # email, any case
    assert [e["action"] for e in found("zoë zebra")] == ["user.update"]         # non-ASCII display name
    assert [e["action"] for e in found(user["id"], actions="user.update")] == ["user.update"]
    assert found("no-such-thing-" + name) == []
    # The source: who did it (the owner's name) and the action itself.
    by_source = owner.get("/cloudron/eventlog", params={"search": "OWNER", "per_page": 5}).json()["eventlogs"]
    assert by_source and all("owner" in str(e["source"]).lower() or "owner" in str(e["data"]).lower()
                             or "owner" in e["action"] for e in by_source)
    by_action = owner.get("/cloudron/eventlog", params={"search": "USER.ADD", "per_page": 5}).json()["eventlogs"]
    assert by_action and all(e["action"] == "user.add" or "user.add" in str(e).lower() for e in by_action)
    # LIKE wildcards are literal: '%' matches only a '%'.
    assert owner.get("/cloudron/eventlog", params={"search": "%"}).json()["eventlogs"] == []


def test_secrets_never_in_event_log(owner):
    name = unique()
    owner.post("/users", json={"username": name, "email": f"{name}@example.com", "password": "Secret-pw-77"})
    text = owner.get("/cloudron/eventlog", params={"per_page": 200}).text
    assert "Secret-pw-77" not in text and "accessToken" not in text


def test_login_throttled_per_user(owner, make_user):
    user, _ = make_user()
    anon = Api(owner.base)
    codes = [anon.post("/cloudron/login", json={"username": user["username"], "password": "wrong-pass"}).status_code
             for _ in range(6)]
    assert codes[:5] == [401] * 5 and codes[5] == 429
    r = anon.post("/cloudron/login", json={"username": user["username"], "password": "Pass-word-1"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0


def test_rate_limit_per_token():
    server = BerthServer(env={"BERTH_RATE_LIMIT": "5"}).start()
    try:
        api = Api(server.api)
        token = api.post("/cloudron/activate", json={"username": "boss", "email": "b@example.com",
                                                     "password": "Boss-pass-1"}).json()["token"]
        codes = [api.with_token(token).get("/profile") for _ in range(7)]
        assert [r.status_code for r in codes[:5]] == [200] * 5
        assert codes[6].status_code == 429 and int(codes[6].headers["Retry-After"]) >= 1
    finally:
        server.cleanup()


@pytest.mark.parametrize("env, needle", [
    ({"BERTH_PORT": "abc"}, "BERTH_PORT"),
    ({"BERTH_DATABASE_URL": "mysql://x"}, "BERTH_DATABASE_URL"),
])
def test_bad_configuration_is_one_clear_line(env, needle, tmp_path):
    import os
    import subprocess
    import sys

    from support.harness import ROOT
    result = subprocess.run([sys.executable, "-m", "cli", "serve"], cwd=ROOT, capture_output=True, text=True,
                            env=dict(os.environ, BERTH_DATA_DIR=str(tmp_path), **env), timeout=60)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0] and "configuration error" in lines[0]
