"""TOTP two-factor authentication and directory_config over HTTP against one real server: the
codes are computed here with pyotp from the secret the server hands out.

Failed logins from 127.0.0.1 are counted per address by the login throttle (20 in 5 minutes):
the whole module stays well under that.
"""
import glob
import os
import time

import pyotp
import pytest

from support.harness import Api, BerthServer, activate, unique

PASSWORD = "Two-factor-pass-1"
STEP = 30


@pytest.fixture(scope="module")
def server():
    srv = BerthServer().start()
    srv.owner = activate(srv)
    yield srv
    srv.cleanup()


def _code(secret, offset_steps=0):
    return pyotp.TOTP(secret).at(time.time() + offset_steps * STEP)


def _new_user(server, role="user"):
    name = unique("tf")
    r = server.owner.post("/users", json={"username": name, "email": f"{name}@example.com",
                                          "password": PASSWORD, "role": role})
    assert r.status_code == 201, r.text
    return name, r.json()["id"]


def _login(server, name, code=None):
    body = {"username": name, "password": PASSWORD}
    if code is not None:
        body["totpToken"] = code
    return Api(server.api).post("/cloudron/login", json=body)


def _session(server, name, code=None):
    r = _login(server, name, code)
    assert r.status_code == 200, r.text
    return Api(server.api, r.json()["token"])


def _enable(api):
    """Set up 2FA on `api`'s user with a code of the previous step (so the current and the next
    step are still unused for logins); returns the secret."""
    r = api.post("/profile/twofactorauthentication_secret")
    assert r.status_code == 201, r.text
    secret = r.json()["secret"]
    r = api.post("/profile/twofactorauthentication_enable", json={"totpToken": _code(secret, -1)})
    assert r.status_code == 202, r.text
    return secret


def _directory(server, **values):
    config = {"lockUserProfiles": False, "mandatory2FA": False, **values}
    r = server.owner.post("/settings/directory_config", json=config)
    assert r.status_code == 200, r.text
    assert server.owner.get("/settings/directory_config").json() == config


def test_totp_round_trip_with_codes_computed_by_the_client(server):
    name, _ = _new_user(server)
    api = _session(server, name)
    assert api.get("/profile").json()["twoFactorAuthenticationEnabled"] is False

    r = api.post("/profile/twofactorauthentication_secret")
    assert r.status_code == 201, r.text
    answer = r.json()
    secret = answer["secret"]
    assert answer["otpauthUrl"].startswith("otpauth://totp/") and f"secret={secret}" in answer["otpauthUrl"]
    assert answer["qrcode"].startswith("data:image/png;base64,")

    r = api.post("/profile/twofactorauthentication_enable", json={"totpToken": _code(pyotp.random_base32())})
    assert r.status_code == 412, r.text
    enable_code = _code(secret, -1)
    r = api.post("/profile/twofactorauthentication_enable", json={"totpToken": enable_code})
    assert r.status_code == 202, r.text
    assert api.get("/profile").json()["twoFactorAuthenticationEnabled"] is True
    assert api.post("/profile/twofactorauthentication_secret").status_code == 409   # no swap while on

    # The secret is kept sealed: it is in no file of the data dir (database and its WAL included)
    # and not in the server log.
    for path in glob.glob(os.path.join(server.data_dir, "**", "*"), recursive=True):
        if os.path.isfile(path):
            with open(path, "rb") as f:
                assert secret.encode() not in f.read(), path

    assert _login(server, name).status_code == 401                          # missing code
    assert "totpToken" in _login(server, name).json()["message"]
    assert _login(server, name, enable_code).status_code == 401             # used to enable: spent
    code = _code(secret)
    r = _login(server, name, code)
    assert r.status_code == 200, r.text
    assert _login(server, name, code).status_code == 401                    # reused

    r = api.post("/profile/twofactorauthentication_disable", json={"password": "not-the-password"})
    assert r.status_code == 412, r.text
    r = api.post("/profile/twofactorauthentication_disable", json={"password": PASSWORD})
    assert r.status_code == 202, r.text
    assert api.get("/profile").json()["twoFactorAuthenticationEnabled"] is False
    assert _login(server, name).status_code == 200


def test_wrong_codes_are_throttled_like_passwords(server):
    name, _ = _new_user(server)
    secret = _enable(_session(server, name))
    statuses = [_login(server, name, "000000" if _code(secret) != "000000" else "111111").status_code
                for _ in range(6)]
    assert statuses == [401] * 5 + [429]
    r = _login(server, name, _code(secret))                    # the right code too, while locked out
    assert r.status_code == 429 and "Retry-After" in r.headers


def test_admin_resets_a_users_two_factor_authentication(server):
    name, user_id = _new_user(server)
    api = _session(server, name)
    _enable(api)
    assert server.owner.get(f"/users/{user_id}").json()["twoFactorAuthenticationEnabled"] is True
    other, _ = _new_user(server)
    r = _session(server, other).post(f"/users/{user_id}/twofactorauthentication_disable")
    assert r.status_code == 403, r.text
    r = server.owner.post(f"/users/{user_id}/twofactorauthentication_disable")
    assert r.status_code == 200, r.text
    assert server.owner.get(f"/users/{user_id}").json()["twoFactorAuthenticationEnabled"] is False
    assert _login(server, name).status_code == 200                         # password alone again
    assert server.owner.post("/users/uid-none/twofactorauthentication_disable").status_code == 404


def test_mandatory_2fa_leaves_a_user_without_it_only_the_setup_routes(server):
    name, _ = _new_user(server)
    api = _session(server, name)
    token = api.post("/tokens", json={"name": "script"}).json()["accessToken"]
    script = api.with_token(token)
    # The owner sets it up first (and keeps it): the policy binds admins too.
    _enable(server.owner)
    _directory(server, mandatory2FA=True)
    try:
        for client in (api, script, _session(server, name)):   # old session, API token, new login
            r = client.get("/tokens")
            assert r.status_code == 403 and "mandatory" in r.json()["message"], r.text
            assert client.get("/profile").status_code == 200
        secret = _enable(api)
        assert api.get("/tokens").status_code == 200
        assert script.get("/tokens").status_code == 200
        assert _login(server, name).status_code == 401                      # now the code is needed
        assert _session(server, name, _code(secret)).get("/tokens").status_code == 200
    finally:
        _directory(server, mandatory2FA=False)


def test_locked_profiles_refuse_users_but_not_admins(server):
    name, user_id = _new_user(server)
    api = _session(server, name)
    assert api.post("/profile", json={"displayName": "Before Lock"}).status_code == 204
    _directory(server, lockUserProfiles=True)
    try:
        for field, value in (("displayName", "Changed"), ("email", f"{unique('m')}@example.com"),
                             ("fallbackEmail", "fb@example.com")):
            r = api.post("/profile", json={field: value})
            assert r.status_code == 403 and "locked" in r.json()["message"], r.text
        assert api.get("/profile").json()["displayName"] == "Before Lock"
        assert server.owner.post("/profile", json={"displayName": "The Owner"}).status_code == 204
        r = server.owner.post(f"/users/{user_id}/profile", json={"displayName": "Set By Admin"})
        assert r.status_code == 204, r.text
        assert api.get("/profile").json()["displayName"] == "Set By Admin"
        assert api.post("/profile/password", json={"password": PASSWORD,
                                                   "newPassword": PASSWORD + "x"}).status_code == 204
        # A user manager may manage users, but not get round the lock on their own profile.
        manager_name, manager_id = _new_user(server, role="usermanager")
        manager = _session(server, manager_name)
        for route in (f"/users/{manager_id}", f"/users/{manager_id}/profile"):
            r = manager.post(route, json={"displayName": "Self Edit"})
            assert r.status_code == 403 and "locked" in r.json()["message"], (route, r.text)
        assert manager.post(f"/users/{user_id}/profile", json={"displayName": "By Manager"}).status_code == 204
    finally:
        _directory(server)
