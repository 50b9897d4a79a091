"""Users tag: user management by user managers and admins."""
from accounts import totp, users
from handlers import serialize
from mail import account_mail
from web.request_context import actor
from web.unbuilt import not_implemented

__getattr__ = not_implemented(__name__)


def _one(user):
    return serialize.users.dump(users.with_group_ids([user])[0])


def list_users(page=1, per_page=25, search=None):
    # Records, not model objects, dumped by the precompiled UserSchema (the hottest list route).
    return {"users": serialize.user_records(users.list_users(page, per_page, search))}


def create_user(body, token_info):
    return _one(users.create_user(actor(token_info), body)), 201


def get_user(user_id):
    return _one(users.get_user(user_id))


def update_user(user_id, body, token_info):
    users.update_user(actor(token_info), user_id, body)
    return None, 204


def delete_user(user_id, token_info):
    users.delete_user(actor(token_info), user_id)
    return None, 204


def set_password(user_id, body, token_info):
    users.set_password(actor(token_info), user_id, body["password"], token_info["token_id"])
    return None, 204


def set_groups(user_id, body, token_info):
    users.set_user_groups(actor(token_info), user_id, body["groupIds"])
    return None, 204


def create_invite(user_id, token_info):
    token = users.create_invite(actor(token_info), user_id)
    return {"resetToken": token, "inviteLink": f"/setup-account?inviteToken={token}"}


def send_invite(user_id, token_info):
    account_mail.send_invite(actor(token_info), user_id)
    return {}


def make_owner(user_id, token_info):
    users.make_owner(actor(token_info), user_id)
    return None, 204


def set_active(user_id, body, token_info):
    users.set_active(actor(token_info), user_id, body["active"])
    return {}


# ---- Cloudron 7+ routes (x-modern): the same domain functions as the seed-era ones -------------

def update_profile(user_id, body, token_info):
    users.update_user_profile(actor(token_info), user_id, body or {})
    return None, 204


def set_role(user_id, body, token_info):
    users.set_role(actor(token_info), user_id, body.get("role"))
    return None, 204


def put_active(user_id, body, token_info):
    users.set_active(actor(token_info), user_id, body["active"])
    return None, 204


def password_reset_link(user_id, token_info):
    secret = users.create_password_reset(actor(token_info), user_id)
    return {"passwordResetLink": f"/passwordreset.html?resetToken={secret}"}


def send_invite_email(user_id, token_info, body=None):
    # The same as send_invite (409 without an invite, 424 when the mail cannot go out).
    account_mail.send_invite(actor(token_info), user_id, (body or {}).get("email"))
    return {}, 202


def logout(user_id, token_info):
    """Berth extension: end every session and API token of the user (the caller's own current
    token survives when they log themselves out everywhere)."""
    revoked = users.revoke_sessions(actor(token_info), user_id, token_info["token_id"])
    return {"revokedTokens": revoked}


def disable_totp(user_id, token_info):
    """Reset a user's two-factor authentication (a lost phone); they log in with the password."""
    totp.admin_disable(actor(token_info), user_id)
    return {}
