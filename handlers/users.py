"""Users tag: user management by user managers and admins."""
import accounts
from handlers import serialize
from web.request_context import actor
from web.unbuilt import not_implemented

__getattr__ = not_implemented(__name__)


def _one(user):
    return serialize.users.dump(accounts.with_group_ids([user])[0])


def list_users(page=1, per_page=25, search=None):
    return {"users": serialize.users.dump(accounts.list_users(page, per_page, search), many=True)}


def create_user(body, token_info):
    return _one(accounts.create_user(actor(token_info), body)), 201


def get_user(user_id):
    return _one(accounts.get_user(user_id))


def update_user(user_id, body, token_info):
    accounts.update_user(actor(token_info), user_id, body)
    return None, 204


def delete_user(user_id, token_info):
    accounts.delete_user(actor(token_info), user_id)
    return None, 204


def set_password(user_id, body, token_info):
    accounts.set_password(actor(token_info), user_id, body["password"])
    return None, 204


def set_groups(user_id, body, token_info):
    accounts.set_user_groups(actor(token_info), user_id, body["groupIds"])
    return None, 204


def create_invite(user_id, token_info):
    token = accounts.create_invite(actor(token_info), user_id)
    return {"resetToken": token, "inviteLink": f"/setup-account?inviteToken={token}"}


def send_invite(user_id, token_info):
    accounts.send_invite(actor(token_info), user_id)
    return {}


def make_owner(user_id, token_info):
    accounts.make_owner(actor(token_info), user_id)
    return None, 204


def set_active(user_id, body, token_info):
    accounts.set_active(actor(token_info), user_id, body["active"])
    return {}
