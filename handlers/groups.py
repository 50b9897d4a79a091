"""Groups tag."""
from accounts import groups
from handlers import serialize
from web.request_context import actor
from web.unbuilt import not_implemented

__getattr__ = not_implemented(__name__)


def list_groups():
    return {"groups": serialize.groups.dump(groups.list_groups(), many=True)}


def create_group(body, token_info):
    group = groups.create_group(actor(token_info), body["name"])
    return serialize.groups.dump(groups.with_member_ids([group])[0]), 201


def get_group(group_id):
    return serialize.groups.dump(groups.with_member_ids([groups.get_group(group_id)])[0])


def rename_group(group_id, body, token_info):
    groups.rename_group(actor(token_info), group_id, body["name"])
    return {}


def set_members(group_id, body, token_info):
    groups.set_group_members(actor(token_info), group_id, body["userIds"])
    return {}


def delete_group(group_id, token_info):
    groups.delete_group(actor(token_info), group_id)
    return None, 204
