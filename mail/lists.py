"""Mailing lists: an address on a domain that fans mail out to its members (any addresses). With
`membersOnly` the server accepts mail for the list only from its members. A list's name shares the
domain's namespace with mailboxes and aliases (a clash is a 409, models.mail)."""
import eventlog
from accounts import emails
from core.errors import BadRequest, NotFound
from mail import addresses, sync
from models import database
from models.mail import LIST, MailAddress

MAX_MEMBERS = 1000


def _members(value: object) -> list[str]:
    if not isinstance(value, list) or not value:
        raise BadRequest("must be a non-empty list of email addresses", "members")
    if len(value) > MAX_MEMBERS:
        raise BadRequest(f"must hold at most {MAX_MEMBERS} addresses", "members")
    return list(dict.fromkeys(emails.check(m, "members") for m in value))


def _flag(body: dict, field: str, default: bool | None) -> bool | None:
    value = body.get(field, default)
    if value is not None and not isinstance(value, bool):
        raise BadRequest("must be a boolean", field)
    return value


def view(row: MailAddress) -> dict:
    """The MailingList shape of the spec."""
    return {"name": row.name, "domain": row.domain_id, "members": list(row.members or []),
            "membersOnly": row.members_only, "active": row.active}


def get_list(domain: str, name: str) -> MailAddress:
    return MailAddress.get_or_raise(NotFound(f"No such mailing list: {name}@{domain}"),
                                    MailAddress.domain == addresses.domain_of(domain),
                                    MailAddress.name == str(name).lower(), MailAddress.type == LIST)


def list_lists(domain: str, page: int = 1, per_page: int = 25, search: str | None = None) -> list[dict]:
    query = MailAddress.select().where((MailAddress.domain == addresses.domain_of(domain))
                                       & (MailAddress.type == LIST))
    if search:
        query = query.where(MailAddress.name.contains(search.strip().lower()))
    return [view(r) for r in query.order_by(MailAddress.name).paginate(page, per_page)]


def add_list(actor: eventlog.Actor, domain: str, body: dict) -> MailAddress:
    dom = addresses.domain_of(domain)
    row = MailAddress(name=addresses.check_name(body.get("name")), domain=dom, type=LIST,
                      members=_members(body.get("members")),
                      members_only=_flag(body, "membersOnly", False), active=_flag(body, "active", True))
    with database.atomic():
        addresses.insert(row, "list")
        sync.apply()
    eventlog.record("mail.list.add", actor, domain=dom, name=row.name, members=row.members,
                    membersOnly=row.members_only)
    return row


def update_list(actor: eventlog.Actor, domain: str, name: str, body: dict) -> None:
    members = _members(body.get("members"))
    members_only, active = _flag(body, "membersOnly", None), _flag(body, "active", None)
    with database.atomic():
        row = get_list(domain, name)
        row.members = members
        if members_only is not None:
            row.members_only = members_only
        if active is not None:
            row.active = active
        row.save()
        sync.apply()
    eventlog.record("mail.list.update", actor, domain=row.domain_id, name=row.name, members=members,
                    membersOnly=row.members_only, active=row.active)


def remove_list(actor: eventlog.Actor, domain: str, name: str) -> None:
    with database.atomic():
        row = get_list(domain, name)
        row.delete_instance()
        sync.apply()
    eventlog.record("mail.list.remove", actor, domain=row.domain_id, name=row.name)
