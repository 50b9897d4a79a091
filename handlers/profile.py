"""Profile tag: the caller's own account, including its TOTP two-factor authentication."""
import domains
import platform_settings
from accounts import avatars, totp, users
from handlers import serialize
from web.request_context import actor
from web.unbuilt import not_implemented

__getattr__ = not_implemented(__name__)


def get_profile(token_info):
    return serialize.profile.dump(users.get_user(token_info["sub"]))


def update_profile(body, token_info):
    users.update_profile(actor(token_info), body)
    return None, 204


def change_password(body, token_info):
    # The token making the change stays valid; every other session of the user ends.
    users.change_own_password(actor(token_info), body["password"], body["newPassword"],
                              token_info["token_id"])
    return None, 204


def set_avatar(avatar, token_info):
    avatars.save(actor(token_info), avatar.read(avatars.MAX_BYTES + 1))
    return {}, 202


def clear_avatar(token_info):
    avatars.remove(actor(token_info))
    return {}, 202


# ---- two-factor authentication (accounts.totp) ------------------------------------------------

def create_totp_secret(token_info):
    # The issuer an authenticator app shows: the dashboard's name, so two servers stay apart.
    issuer = domains.dashboard.admin_fqdn() or platform_settings.get("cloudron_name") or "Berth"
    return totp.create_secret(actor(token_info), issuer), 201


def enable_totp(body, token_info):
    totp.enable(actor(token_info), body["totpToken"])
    return {}, 202


def disable_totp(body, token_info):
    totp.disable(actor(token_info), body["password"])
    return {}, 202
