"""The rules of TOTP two-factor authentication (accounts.totp) and directory_config, on a real
SQLite database: the code window, single use of a code, throttling at login, the sealed secret,
and the mandatory-2FA / locked-profile checks."""
import os
import stat
import time

import pyotp
import pytest

from accounts import directory_config, login_throttle, sessions, totp, users
from core import data_paths, sealing
from core.errors import Conflict, Forbidden, PreconditionFailed, TooManyRequests, Unauthorized
from eventlog import Actor
from models import User

PASSWORD = "Totp-pass-1234"


def _user(name="tess", role="user", password=PASSWORD):
    """A user (without a password when the test never checks one: hashing costs ~0.3 s)."""
    fields = {"username": name, "email": f"{name}@example.com"}
    if password:
        fields["password"] = password
    user = users.create_user(None, fields, role=role)
    return user, Actor(user.id, user.username, user.role, "192.0.2.7")


def _code(secret, now, steps=0):
    return pyotp.TOTP(secret).at(now + steps * totp.STEP_SECS)


def _enabled(db, name="tess", now=None):
    """A user with 2FA on, enabled at `now`; returns (user, actor, secret, now)."""
    now = now or time.time()
    user, actor = _user(name)
    secret = totp.create_secret(actor, "berth.example.test")["secret"]
    totp.enable(actor, _code(secret, now), now)
    return User.get_by_id(user.id), actor, secret, now


def test_code_window_is_one_step_either_way(db):
    secret = pyotp.random_base32()
    now = 1_700_000_000.0
    step = totp.current_step(now)
    for offset in (-1, 0, 1):
        assert totp.matching_step(secret, _code(secret, now, offset), now) == step + offset
    for offset in (-3, -2, 2, 3):
        assert totp.matching_step(secret, _code(secret, now, offset), now) is None
    for bad in (None, "", "12345", "1234567", "abcdef", " " * 6):
        assert totp.matching_step(secret, bad, now) is None


def test_secret_response_has_url_and_png_qr_code_and_is_stored_sealed(db):
    user, actor = _user()
    answer = totp.create_secret(actor, "berth.example.test")
    assert answer["otpauthUrl"].startswith("otpauth://totp/")
    assert f"secret={answer['secret']}" in answer["otpauthUrl"]
    assert answer["qrcode"].startswith("data:image/png;base64,")
    stored = User.get_by_id(user.id).totp_secret
    assert answer["secret"] not in stored and stored.startswith(sealing.SEALED_PREFIX)
    assert sealing.unseal(stored, user.id) == answer["secret"]
    assert stat.S_IMODE(os.stat(data_paths.at_rest_key()).st_mode) == 0o600


def test_secret_sealed_for_one_user_does_not_open_for_another(db):
    sealed = sealing.seal("JBSWY3DPEHPK3PXP", "uid-a")
    assert sealing.unseal(sealed, "uid-a") == "JBSWY3DPEHPK3PXP"
    assert sealing.unseal(sealed, "uid-b") is None


def test_enable_needs_a_valid_code_of_the_pending_secret(db):
    user, actor = _user()
    with pytest.raises(PreconditionFailed):
        totp.enable(actor, "123456")                      # no secret yet
    secret = totp.create_secret(actor, "x")["secret"]
    now = time.time()
    with pytest.raises(PreconditionFailed):
        totp.enable(actor, _code(pyotp.random_base32(), now), now)
    assert not User.get_by_id(user.id).totp_enabled
    totp.enable(actor, _code(secret, now), now)
    assert User.get_by_id(user.id).totp_enabled
    with pytest.raises(Conflict):
        totp.create_secret(actor, "x")                    # no secret swap while on


def test_reused_code_is_refused(db):
    user, _, secret, now = _enabled(db)
    # The code that enabled 2FA is used up; so is every code of an earlier step.
    with pytest.raises(Unauthorized):
        totp.verify_login(user, _code(secret, now), now)
    later = now + totp.STEP_SECS
    totp.verify_login(user, _code(secret, later), later)
    with pytest.raises(Unauthorized):
        totp.verify_login(User.get_by_id(user.id), _code(secret, later), later)
    with pytest.raises(Unauthorized):   # still inside the window, but older than the last used
        totp.verify_login(User.get_by_id(user.id), _code(secret, later, -1), later)


def test_two_logins_racing_with_one_code_cannot_both_succeed(db):
    user, _, secret, now = _enabled(db)
    later = now + 2 * totp.STEP_SECS
    first, second = User.get_by_id(user.id), User.get_by_id(user.id)   # both read before either claims
    totp.verify_login(first, _code(secret, later), later)
    with pytest.raises(Unauthorized):
        totp.verify_login(second, _code(secret, later), later)


def test_login_refuses_missing_wrong_and_reused_codes_and_counts_them_as_failures(db):
    user, _, secret, enabled_at = _enabled(db)
    with pytest.raises(Unauthorized, match="totpToken must be provided"):
        sessions.login("tess", PASSWORD, "192.0.2.7")
    with pytest.raises(Unauthorized, match="Invalid totpToken"):
        sessions.login("tess", PASSWORD, "192.0.2.7", "12345x")
    with pytest.raises(Unauthorized, match="Invalid totpToken"):
        sessions.login("tess", PASSWORD, "192.0.2.7", _code(secret, enabled_at))   # used to enable
    subject = login_throttle.subject(user.id, "tess")
    for _ in range(login_throttle.MAX_PER_USER - 3):   # the three refusals above counted already
        with pytest.raises(Unauthorized):
            sessions.login("tess", PASSWORD, "192.0.2.7", "999999")
    # Locked out now, even with the right code: guessing codes is as slow as guessing passwords.
    with pytest.raises(TooManyRequests):
        sessions.login("tess", PASSWORD, "192.0.2.7", _code(secret, time.time(), 1))
    login_throttle.succeeded(subject)
    secret_token, _ = sessions.login("tess", PASSWORD, "192.0.2.7", _code(secret, time.time(), 1))
    assert secret_token
    # The login saved the user row: the claimed step must have survived it.
    assert User.get_by_id(user.id).totp_last_step == totp.current_step() + 1


def test_disable_needs_the_password_and_admin_reset_needs_rights(db):
    user, actor, _, _ = _enabled(db)
    with pytest.raises(PreconditionFailed):
        totp.disable(actor, "wrong-password")
    totp.disable(actor, PASSWORD)
    row = User.get_by_id(user.id)
    assert not row.totp_enabled and row.totp_secret is None
    other, other_actor, _, _ = _enabled(db, "olga")
    with pytest.raises(Forbidden):
        totp.admin_disable(actor, other.id)             # a plain user manages nobody
    _, admin = _user("adam", role="admin", password=None)
    totp.admin_disable(admin, other.id)
    assert not User.get_by_id(other.id).totp_enabled


def test_mandatory_2fa_allows_only_the_setup_routes_until_2fa_is_on(db):
    user, actor = _user(password=None)
    _, admin = _user("adam", role="admin", password=None)
    directory_config.check_request(user.id, "handlers.apps.list_apps")      # policy off
    directory_config.set_config(admin, {"lockUserProfiles": False, "mandatory2FA": True})
    with pytest.raises(Forbidden, match="mandatory"):
        directory_config.check_request(user.id, "handlers.apps.list_apps")
    for allowed in directory_config.ALLOWED_WITHOUT_2FA:
        directory_config.check_request(user.id, allowed)
    now = time.time()
    secret = totp.create_secret(actor, "x")["secret"]
    totp.enable(actor, _code(secret, now), now)
    directory_config.check_request(user.id, "handlers.apps.list_apps")


def test_locked_profiles_refuse_users_but_not_admins(db):
    _, actor = _user(password=None)
    _, admin = _user("adam", role="admin", password=None)
    directory_config.check_profile_edit(actor)
    directory_config.set_config(admin, {"lockUserProfiles": True, "mandatory2FA": False})
    assert directory_config.get() == {"lockUserProfiles": True, "mandatory2FA": False}
    with pytest.raises(Forbidden, match="locked"):
        directory_config.check_profile_edit(actor)
    directory_config.check_profile_edit(admin)
