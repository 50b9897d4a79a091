"""Sessions end when trust changes, and login throttling counts per account (security review
findings 10 and 11), through the HTTP API of a real server."""
from support.harness import Api, unique

PASSWORD = "Pass-word-1"


def _login(base, name, password=PASSWORD):
    r = Api(base).post("/cloudron/login", json={"username": name, "password": password})
    assert r.status_code == 200, r.text
    return Api(base, r.json()["token"])


def _api_token(api):
    r = api.post("/tokens", json={"name": unique("tok")})
    assert r.status_code == 201, r.text
    return api.with_token(r.json()["accessToken"])


def _app_password(api):
    r = api.post("/app_passwords", json={"name": unique("ap"), "identifier": "mail"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


# ---- finding 10: the per-user throttle is per account, however the account is named ---------------

def test_login_throttle_bypass_with_padded_case_and_email_variants_gets_429(fresh_berth):
    api = Api(fresh_berth.api)
    r = api.post("/cloudron/activate", json={"username": "boss", "email": "boss@example.com",
                                             "password": "Boss-pass-1"})
    owner = api.with_token(r.json()["token"])
    assert owner.post("/users", json={"username": "uuser", "email": "user@example.com",
                                      "password": PASSWORD}).status_code == 201
    wrong = [api.post("/cloudron/login", json={"username": "uuser", "password": "wrong-pass"}).status_code
             for _ in range(5)]
    assert wrong == [401] * 5
    # The review's variants: each was a fresh 5-attempt bucket for the same account.
    for variant in (" uuser", "uuser ", "  uuser", "UUSER ", "user@example.com", " user@example.com"):
        r = api.post("/cloudron/login", json={"username": variant, "password": "wrong-pass"})
        assert r.status_code == 429, (variant, r.status_code, r.text)
    # ... and the right password through a variant does not get in while the account is locked.
    r = api.post("/cloudron/login", json={"username": "   uuser", "password": PASSWORD})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0


def test_login_failures_under_different_names_of_one_account_add_up(fresh_berth):
    api = Api(fresh_berth.api)
    owner = api.with_token(api.post("/cloudron/activate", json={
        "username": "boss", "email": "boss@example.com", "password": "Boss-pass-1"}).json()["token"])
    assert owner.post("/users", json={"username": "vuser", "email": "v@example.com",
                                      "password": PASSWORD}).status_code == 201
    names = ("vuser", "VUSER", " vuser ", "v@example.com", "V@Example.com")
    codes = [api.post("/cloudron/login", json={"username": n, "password": "wrong-pass"}).status_code
             for n in names]
    assert codes == [401] * 5
    assert api.post("/cloudron/login", json={"username": "vuser", "password": PASSWORD}).status_code == 429
    # Another account from the same address is not locked by it.
    assert api.post("/cloudron/login", json={"username": "boss", "password": "Boss-pass-1"}).status_code == 200


# ---- finding 11: tokens are revoked when trust changes -----------------------------------------------

def test_admin_password_reset_revokes_old_sessions_api_tokens_and_app_passwords(owner, make_user):
    user, session = make_user()
    api_token = _api_token(session)
    _app_password(session)
    assert session.get("/profile").status_code == 200
    assert owner.post(f"/users/{user['id']}/password", json={"password": "Reset-pass-2"}).status_code == 204
    assert session.get("/profile").status_code == 401
    assert api_token.get("/profile").status_code == 401
    fresh = _login(owner.base, user["username"], "Reset-pass-2")
    assert fresh.get("/app_passwords").json()["appPasswords"] == []
    assert owner.get("/profile").status_code == 200  # the manager's own session is untouched


def test_own_password_change_keeps_current_session_and_ends_the_others(owner, make_user):
    user, session = make_user()
    other = _login(owner.base, user["username"])
    api_token = _api_token(other)
    pid = _app_password(session)
    r = session.post("/profile/password", json={"password": PASSWORD, "newPassword": "Second-pass-2"})
    assert r.status_code == 204
    assert session.get("/profile").status_code == 200
    assert other.get("/profile").status_code == 401
    assert api_token.get("/profile").status_code == 401
    assert session.get(f"/app_passwords/{pid}").status_code == 200  # the user's own, kept


def test_deactivated_users_tokens_do_not_come_back_on_reactivation(owner, make_user):
    user, session = make_user()
    api_token = _api_token(session)
    assert owner.post(f"/users/{user['id']}/active", json={"active": False}).status_code == 200
    assert session.get("/profile").status_code == 401
    assert owner.post(f"/users/{user['id']}/active", json={"active": True}).status_code == 200
    assert session.get("/profile").status_code == 401
    assert api_token.get("/profile").status_code == 401
    assert _login(owner.base, user["username"]).get("/profile").status_code == 200


def test_role_downgrade_revokes_sessions_but_promotion_does_not(owner, make_user):
    user, session = make_user("usermanager")
    assert owner.post(f"/users/{user['id']}", json={"role": "admin"}).status_code == 204
    assert session.get("/profile").json()["role"] == "admin"
    assert owner.post(f"/users/{user['id']}", json={"role": "user"}).status_code == 204
    assert session.get("/profile").status_code == 401
    assert _login(owner.base, user["username"]).get("/profile").json()["role"] == "user"


# ---- logging another user out everywhere (Berth extension) -------------------------------------------

def test_admin_logs_out_a_user_everywhere(owner, make_user):
    user, session = make_user()
    api_token = _api_token(session)
    _, admin = make_user("admin")
    r = admin.post(f"/users/{user['id']}/logout")
    assert r.status_code == 200 and r.json() == {"revokedTokens": 2}, r.text
    assert session.get("/profile").status_code == 401 and api_token.get("/profile").status_code == 401
    assert admin.get("/profile").status_code == 200
    events = owner.get("/cloudron/eventlog", params={"action": "user.logout_everywhere"}).json()["eventlogs"]
    assert any(e["data"]["userId"] == user["id"] for e in events)


def test_logout_everywhere_is_for_admins_and_spares_the_owner(owner, make_user):
    owner_id = owner.get("/profile").json()["id"]
    plain, _ = make_user()
    _, admin = make_user("admin")
    _, manager = make_user("usermanager")
    assert admin.post(f"/users/{owner_id}/logout").status_code == 403
    assert manager.post(f"/users/{plain['id']}/logout").status_code == 403
    assert admin.post("/users/uid-missing/logout").status_code == 404
    assert owner.get("/profile").status_code == 200


def test_logging_oneself_out_everywhere_keeps_the_calling_session(owner, make_user):
    me, admin = make_user("admin")
    other = _login(owner.base, me["username"])
    r = admin.post(f"/users/{me['id']}/logout")
    assert r.status_code == 200 and r.json() == {"revokedTokens": 1}
    assert admin.get("/profile").status_code == 200 and other.get("/profile").status_code == 401


def test_token_use_is_stamped(owner, make_user):
    # The stamp is written off the event loop (web/security.py); it still lands.
    _, session = make_user()
    r = session.post("/tokens", json={"name": "stamp"})
    token = session.with_token(r.json()["accessToken"])
    assert session.get(f"/tokens/{r.json()['id']}").json()["lastUsedTime"] is None
    assert token.get("/profile").status_code == 200
    assert session.get(f"/tokens/{r.json()['id']}").json()["lastUsedTime"].endswith("Z")
