"""App Passwords tag: the caller's own app-specific passwords."""
from accounts import app_passwords
from handlers import serialize
from web.request_context import actor
from web.unbuilt import not_implemented

__getattr__ = not_implemented(__name__)


def list_app_passwords(token_info, page=1, per_page=25):
    rows = app_passwords.list_app_passwords(token_info["sub"], page, per_page)
    return {"appPasswords": serialize.app_passwords.dump(rows, many=True)}


def create_app_password(body, token_info):
    row, secret = app_passwords.create_app_password(actor(token_info), body["name"], body["identifier"])
    return {"id": row.id, "password": secret}, 201


def get_app_password(app_password_id, token_info):
    return serialize.app_passwords.dump(app_passwords.get_app_password(token_info["sub"], app_password_id))


def delete_app_password(app_password_id, token_info):
    app_passwords.delete_app_password(actor(token_info), app_password_id)
    return None, 204
