"""Groups and their members."""
import uuid

import peewee

import eventlog
from accounts import membership, roles
from accounts.users import RESERVED_NAMES
from core.errors import BadRequest, Conflict, NotFound
from models import Group, GroupMember, User, database


def _check_group_name(name):
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise BadRequest("must be 1 to 200 characters", "name")
    if name.lower() in RESERVED_NAMES:
        raise BadRequest(f"'{name}' is reserved", "name")
    if not all(c.isascii() and (c.isalnum() or c in "_-") for c in name):
        raise BadRequest("may only contain letters, digits, '_' and '-'", "name")
    return name


def get_group(group_id: str) -> Group:
    return Group.get_or_raise(NotFound("No such group"), Group.id == group_id)


def with_member_ids(groups: list) -> list:
    """Set `user_ids` on each group; returns the groups."""
    return membership.attach(groups, "user_ids", GroupMember.group, GroupMember.user)


def list_groups() -> list:
    return with_member_ids(list(Group.select().order_by(Group.name)))


def create_group(actor: eventlog.Actor, name: str) -> Group:
    name = _check_group_name(name)
    try:
        group = Group.create(id=f"gid-{uuid.uuid4()}", name=name)
    except peewee.IntegrityError:
        raise Conflict("A group with this name already exists") from None
    eventlog.record("group.add", actor, groupId=group.id, name=name)
    return group


def rename_group(actor: eventlog.Actor, group_id: str, name: str) -> None:
    group = get_group(group_id)
    group.name = _check_group_name(name)
    try:
        group.save()
    except peewee.IntegrityError:
        raise Conflict("A group with this name already exists") from None
    eventlog.record("group.update", actor, groupId=group.id, name=group.name)


def set_group_members(actor: eventlog.Actor, group_id: str, user_ids: list) -> None:
    """Replace the members. Every user added or removed must be one the actor may change (as for
    PUT /users/{id}/groups); members that stay are not checked, so a usermanager can still edit
    a group an admin belongs to without touching the admin's membership."""
    group = get_group(group_id)
    user_ids = list(dict.fromkeys(user_ids))
    membership.check_exist(User, user_ids, "user")
    with database.atomic():
        changed = membership.current(GroupMember.group, group.id, GroupMember.user) ^ set(user_ids)
        if changed:
            roles.check_membership_change(actor, User.select(User.id, User.role).where(User.id.in_(sorted(changed))))
        membership.replace(GroupMember.group, group.id, GroupMember.user, user_ids)
    eventlog.record("group.update", actor, groupId=group.id, userIds=user_ids)


def delete_group(actor: eventlog.Actor, group_id: str) -> None:
    group = get_group(group_id)
    with database.atomic():
        group.delete_instance(recursive=True)
    eventlog.record("group.remove", actor, groupId=group.id, name=group.name)
