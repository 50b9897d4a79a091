"""directory_config: two policies of the user directory (GET/POST /settings/directory_config).

- lockUserProfiles: users may not change their own display name, email or fallback email
  (403 with a message); owners and admins still may, for themselves and for others through
  /users. Users from an external directory are governed by that directory anyway.
- mandatory2FA: every user must use TOTP two-factor authentication (accounts.totp). A user
  without it can still log in with their password (otherwise nobody could ever set it up), but
  until 2FA is on, every token of that user (sessions and API tokens alike) may call only the
  routes of ALLOWED_WITHOUT_2FA: read the profile, create the secret, enable 2FA, log out.
  Every other route answers 403 with a message saying so. `check_request` is called by
  web.security for every authenticated request and reads the policy and the user's state then,
  so turning the policy on applies to tokens already issued, and enabling 2FA opens the other
  routes at once without a new login. (Cloudron enforces this in its dashboard; Berth enforces it
  in the API, where a client cannot skip it.)
"""
import eventlog
from core.errors import Forbidden
from models import Setting, User

SETTING = "directory_config"
DEFAULTS = {"lockUserProfiles": False, "mandatory2FA": False}
PROFILE_EDITORS = ("owner", "admin")

ALLOWED_WITHOUT_2FA = frozenset({
    "handlers.profile.get_profile",
    "handlers.profile.create_totp_secret",
    "handlers.profile.enable_totp",
    "handlers.cloudron.logout",
})


def get() -> dict:
    stored = Setting.read(SETTING) or {}
    return {key: bool(stored.get(key, default)) for key, default in DEFAULTS.items()}


def set_config(actor: eventlog.Actor, body: dict) -> None:
    """Both fields are required booleans (the spec checks the shape)."""
    value = {key: bool(body[key]) for key in DEFAULTS}
    Setting.put(SETTING, value)
    eventlog.record("settings.directory_config", actor, **value)


def check_profile_edit(actor: eventlog.Actor) -> None:
    """Raise Forbidden when profiles are locked and the caller may not edit their own."""
    if actor.role not in PROFILE_EDITORS and get()["lockUserProfiles"]:
        raise Forbidden("An administrator has locked user profiles: ask one to change your profile")


def check_request(user_id: str, operation_id: str | None) -> None:
    """Refuse a request of a user without 2FA when 2FA is mandatory (see the module docstring).
    Two reads by primary key at most, the second only while the policy is on."""
    if operation_id in ALLOWED_WITHOUT_2FA or not get()["mandatory2FA"]:
        return
    enabled = User.select(User.totp_enabled).where(User.id == user_id).scalar()
    if not enabled:
        raise _needs_2fa()


def check_token(stored_policy: str | None, totp_enabled: bool, operation_id: str | None) -> None:
    """check_request for web.security, from what the token lookup already read in its one query
    (accounts.tokens.lookup: the stored setting's text and the user's 2FA state): no more reads."""
    if totp_enabled or stored_policy is None or operation_id in ALLOWED_WITHOUT_2FA:
        return
    if _mandatory(stored_policy):
        raise _needs_2fa()


_parsed = (None, False)  # (the last stored text seen, its mandatory2FA): the policy rarely changes


def _mandatory(stored: str) -> bool:
    global _parsed
    text, mandatory = _parsed
    if stored != text:
        value = Setting.value.python_value(stored) or {}
        mandatory = bool(value.get("mandatory2FA", DEFAULTS["mandatory2FA"]))
        _parsed = (stored, mandatory)
    return mandatory


def _needs_2fa() -> Forbidden:
    return Forbidden("Two-factor authentication is mandatory: set it up "
                     "(POST /profile/twofactorauthentication_secret, then _enable) to use this route")
