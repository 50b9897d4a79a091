"""TOTP two-factor authentication (RFC 6238: 30-second time steps, 6 digits, SHA-1, which is what
authenticator apps expect).

- A user creates a secret (it is pending), sees it once with an otpauth:// URL and a QR code, and
  turns 2FA on by proving their app has it (a valid code). Creating a new secret while 2FA is on
  is refused (409), so a stolen session cannot swap the secret; turning it off needs the password
  (or an admin who may manage the user).
- The secret is sealed (core.sealing: AES-256-GCM, the user id as associated data) with a key kept
  in a 0600 file under the data dir, not in the database: a copy of the
  database (a leaked file, a box backup download) does not let anyone compute codes. That key is
  not in box backups, so after a restore onto another host the secrets cannot be opened: such
  accounts are refused at login with a message saying an admin must reset their 2FA.
- Codes of the current step and one step either side are accepted (a phone clock a little off).
  A code is usable once: the step of the last accepted code is kept and a code of that step or
  an earlier one is refused. The step is claimed by a conditional UPDATE, so two logins racing
  with one code (even in two processes) cannot both succeed.
- A missing or wrong code at login counts in accounts.login_throttle like a wrong password
  (accounts.sessions.login), so codes cannot be guessed faster than passwords.
The secret and codes are never logged nor put in the event log.
segno (QR codes) is imported by create_secret, the one rare route that draws one: every server
worker imports this module for logins (issue 18, idle memory).
"""
import hmac
import time

import pyotp

import eventlog
from accounts import login_throttle, passwords, roles
from core.errors import Conflict, NotFound, PreconditionFailed, Unauthorized
from core.sealing import seal, unseal
from models import User

STEP_SECS = 30
DIGITS = 6
DRIFT_STEPS = 1            # accepted steps either side of the current one

UNREADABLE = ("The two-factor secret of this account cannot be read on this server (restored from "
              "another one?): an administrator must reset its two-factor authentication")


# ---- codes ----------------------------------------------------------------------------------------

def current_step(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // STEP_SECS)


def matching_step(secret: str, code: str | None, now: float | None = None) -> int | None:
    """The time step `code` belongs to, within the drift window; None if it matches none."""
    code = (code or "").strip()
    if len(code) != DIGITS or not code.isdigit():
        return None
    otp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECS)
    step = current_step(now)
    found = None
    for candidate in range(step - DRIFT_STEPS, step + DRIFT_STEPS + 1):
        # Every candidate is compared (constant time each), so timing does not tell which matched.
        if hmac.compare_digest(otp.generate_otp(candidate), code) and found is None:
            found = candidate
    return found


def _claim(user: User, step: int) -> bool:
    """Record `step` as used unless it (or a later one) already was; True when this call did."""
    claimed = (User.update(totp_last_step=step)
               .where((User.id == user.id)
                      & (User.totp_last_step.is_null() | (User.totp_last_step < step)))
               .execute()) == 1
    if claimed:
        user.totp_last_step = step    # a later user.save() of this object must not undo the claim
    return claimed


def verify_login(user: User, code: str | None, now: float | None = None) -> None:
    """Second factor of a login whose password was right. Raises Unauthorized when 2FA is on and
    the code is missing, wrong, already used, or the secret cannot be opened."""
    if not user.totp_enabled:
        return
    if not (code or "").strip():
        raise Unauthorized("A totpToken must be provided")
    secret = unseal(user.totp_secret, user.id)
    if secret is None:
        raise Unauthorized(UNREADABLE)
    step = matching_step(secret, code, now)
    if step is None or not _claim(user, step):
        raise Unauthorized("Invalid totpToken")


# ---- the user's own set-up --------------------------------------------------------------------------

def create_secret(actor: eventlog.Actor, issuer: str) -> dict:
    """A new pending secret for the caller: {secret, otpauthUrl, qrcode (PNG data URL)}."""
    user = User.get_by_id(actor.user_id)
    if user.totp_enabled:
        raise Conflict("Two-factor authentication is enabled, disable it first")
    secret = pyotp.random_base32()
    User.update(totp_secret=seal(secret, user.id), totp_last_step=None).where(User.id == user.id).execute()
    url = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECS).provisioning_uri(
        name=user.username or user.email, issuer_name=issuer)
    import segno  # see the module docstring
    qrcode = segno.make(url, error="m").png_data_uri(scale=5, border=2)
    eventlog.record("user.twofactor.secret", actor, userId=user.id)
    return {"secret": secret, "otpauthUrl": url, "qrcode": qrcode}


def enable(actor: eventlog.Actor, code: str, now: float | None = None) -> None:
    """Turn 2FA on with a code of the pending secret; that code is then used up for login."""
    user = User.get_by_id(actor.user_id)
    if user.totp_enabled:
        raise Conflict("Two-factor authentication is already enabled")
    secret = unseal(user.totp_secret, user.id)
    if secret is None:
        raise PreconditionFailed("No two-factor secret was created (create one first)")
    step = matching_step(secret, code, now)
    if step is None or not _claim(user, step):
        raise PreconditionFailed("Invalid totpToken")
    User.update(totp_enabled=True).where(User.id == user.id).execute()
    eventlog.record("user.twofactor.enable", actor, userId=user.id)


def disable(actor: eventlog.Actor, password: str) -> None:
    """The user's own switch-off: needs their password (checked as at login, so a user of an
    external directory gives that directory's password). Wrong passwords count in the login
    throttle (a stolen session must not become a password oracle)."""
    from accounts import external_ldap  # imported here: external_ldap imports accounts modules at its top
    user = User.get_by_id(actor.user_id)
    subject = login_throttle.subject(user.id, user.username or user.email)
    login_throttle.check(subject, actor.ip)
    if not external_ldap.check_password(user, user.password_hash or passwords.DUMMY_HASH, password):
        login_throttle.failed(subject, actor.ip)
        raise PreconditionFailed("password: the current password is wrong")
    if not user.totp_enabled and not user.totp_secret:
        return
    _clear(user.id)
    eventlog.record("user.twofactor.disable", actor, userId=user.id)


def admin_disable(actor: eventlog.Actor, user_id: str) -> None:
    """An admin (or user manager) resets a user's 2FA, e.g. for a lost phone."""
    user = User.get_or_raise(NotFound("No such user"), User.id == user_id)
    roles.check_manage(actor, user)
    _clear(user.id)
    eventlog.record("user.twofactor.disable", actor, userId=user.id)


def _clear(user_id: str) -> None:
    User.update(totp_secret=None, totp_enabled=False, totp_last_step=None).where(User.id == user_id).execute()

