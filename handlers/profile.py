"""Profile tag: the caller's own account."""
import accounts
from accounts import avatars
from handlers import serialize
from web.request_context import actor
from web.unbuilt import not_implemented

__getattr__ = not_implemented(__name__)


def get_profile(token_info):
    return serialize.profile.dump(accounts.get_user(token_info["sub"]))


def update_profile(body, token_info):
    accounts.update_profile(actor(token_info), body)
    return None, 204


def change_password(body, token_info):
    accounts.change_own_password(actor(token_info), body["password"], body["newPassword"])
    return None, 204


def set_avatar(avatar, token_info):
    avatars.save(actor(token_info), avatar.read(avatars.MAX_BYTES + 1))
    return {}, 202


def clear_avatar(token_info):
    avatars.remove(actor(token_info))
    return {}, 202
