"""Group membership (the GroupMember link table), read and replaced from either side."""
import peewee

from core.errors import NotFound
from models import BaseModel, GroupMember, database


def attach(objects: list, attr: str, own: peewee.ForeignKeyField, other: peewee.ForeignKeyField) -> list:
    """Set `attr` on each object to the ids linked to it through GroupMember (one query).
    `own`/`other` are GroupMember.user/GroupMember.group (or the reverse)."""
    by_id = {o.id: o for o in objects}
    for o in objects:
        setattr(o, attr, [])
    if by_id:
        for link in GroupMember.select(GroupMember.user, GroupMember.group).where(own.in_(list(by_id))):
            getattr(by_id[getattr(link, own.name + "_id")], attr).append(getattr(link, other.name + "_id"))
    return objects


def current(own: peewee.ForeignKeyField, own_id: str, other: peewee.ForeignKeyField) -> set:
    """The ids linked to `own_id` now (the ids of `other`)."""
    return {getattr(link, other.name + "_id")
            for link in GroupMember.select(GroupMember.user, GroupMember.group).where(own == own_id)}


def check_exist(model: type[BaseModel], ids: list, what: str) -> None:
    """404 naming the first id in `ids` that has no row in `model`."""
    found = {row.id for row in model.select(model.id).where(model.id.in_(ids))} if ids else set()
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(f"No such {what}: {missing[0]}")


def replace(own: peewee.ForeignKeyField, own_id: str, other: peewee.ForeignKeyField, other_ids: list) -> None:
    """Make the links of `own_id` exactly `other_ids` (in one transaction)."""
    with database.atomic():
        GroupMember.delete().where(own == own_id).execute()
        if other_ids:
            GroupMember.insert_many([{own.name: own_id, other.name: i} for i in other_ids]).execute()
