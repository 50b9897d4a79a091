"""Groups tag."""
import accounts
from handlers import serialize
from web.request_context import actor
from web.unbuilt import not_implemented

__getattr__ = not_implemented(__name__)


def list_groups():
    return {"groups": serialize.groups.dump(accounts.list_groups(), many=True)}


def create_group(body, token_info):
    group = accounts.create_group(actor(token_info), body["name"])
    return serialize.groups.dump(accounts.with_member_ids([group])[0]), 201


def get_group(group_id):
    return serialize.groups.dump(accounts.with_member_ids([accounts.get_group(group_id)])[0])


def rename_group(group_id, body, token_info):
    accounts.rename_group(actor(token_info), group_id, body["name"])
    return {}


def set_members(group_id, body, token_info):
    accounts.set_group_members(actor(token_info), group_id, body["userIds"])
    return {}


def delete_group(group_id, token_info):
    accounts.delete_group(actor(token_info), group_id)
    return None, 204
