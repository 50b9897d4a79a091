"""support tag of openapi.yaml: tickets by mail to the support address; remote support refused."""
from accounts import users
from appstore import support
from mail import outgoing
from web.unbuilt import not_implemented

__getattr__ = not_implemented(__name__)


def create_ticket(token_info, body=None):
    user = users.get_user(token_info["sub"])
    to, subject, text = support.ticket(body or {}, user.email, user.display_name or user.username)
    outgoing.send(to, subject, text)
    return {"message": f"Your ticket was sent by mail to {to}"}, 201


def get_remote_support():
    return support.remote_support()


def set_remote_support(body):
    support.set_remote_support(body["enable"])
    return {}, 202
