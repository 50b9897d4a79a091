"""Mailboxes and their aliases.

A mailbox belongs to a user or a group (ownerId, ownerType). Who may log in to it is decided by
mail.checkpassword: the owning user, or any active member of the owning group, each with their own
Berth password or one of their app passwords.

Names are stored lower case and are unique per domain across mailboxes, aliases and lists (one
unique index, models.mail): a duplicate or a clash is a 409 however the requests interleave. An
alias names a mailbox (and may live on another domain of this Berth); removing the mailbox removes
its aliases. Every change is applied to the mail server in its transaction (mail.sync).

A mailbox outlives its owner, as in Cloudron (which stopped deleting them with the user in 2018):
when the owning user or group is deleted, the mailbox, its aliases and its mail stay and mail is
still accepted, but nobody can log in (checkpassword finds no owner) until an admin gives it a new
owner (update_mailbox), who then reads what arrived meanwhile. So accounts needs no hook here.
"""
import logging
import re

import peewee

import domains
import eventlog
import mail_server
from core.errors import BadRequest, Conflict, NotFound
from mail import sync
from models import Group, User, database
from models.mail import ALIAS, MAILBOX, MailAddress

NAME = re.compile(r"[a-z0-9.-]{1,199}")
ALIAS_NAME = re.compile(r"[a-z0-9.*-]{1,199}")
MAX_ALIASES = 100
log = logging.getLogger("berth.mail")
OWNER_TYPES = ("user", "group")


def check_name(name: object, field: str = "name", pattern: re.Pattern = NAME) -> str:
    """A local part as stored (lower case), or 400 naming `field`. fullmatch: no trailing newline."""
    if not isinstance(name, str):
        raise BadRequest("must be a string", field)
    clean = name.strip().lower()
    if not pattern.fullmatch(clean):
        raise BadRequest("must be 1 to 199 of letters, digits, '.' and '-'", field)
    if clean.startswith(".") or clean.endswith(".") or ".." in clean:
        raise BadRequest("must not start or end with '.' or contain '..'", field)
    return clean


def _owner(owner_id: object, owner_type: object) -> tuple[str, str]:
    if owner_type not in OWNER_TYPES:
        raise BadRequest("must be user or group", "ownerType")
    if not isinstance(owner_id, str) or not owner_id:
        raise BadRequest("is required", "ownerId")
    model = User if owner_type == "user" else Group
    if not model.select().where(model.id == owner_id).exists():
        raise BadRequest(f"no such {owner_type}", "ownerId")
    return owner_id, owner_type


def _active(value: object) -> bool:
    if not isinstance(value, bool):
        raise BadRequest("must be a boolean", "active")
    return value


def domain_of(domain: str) -> str:
    return domains.get_domain(domain).domain  # 404 for an unknown domain


def insert(row: MailAddress, what: str) -> None:
    try:
        with database.atomic():
            row.save(force_insert=True)
    except peewee.IntegrityError:
        raise Conflict(f"{row.address} already exists (as a mailbox, alias or list); {what} not added") from None


# ---- reading -------------------------------------------------------------------------------------

def get_mailbox(domain: str, name: str) -> MailAddress:
    return MailAddress.get_or_raise(NotFound(f"No such mailbox: {name}@{domain}"),
                                    MailAddress.domain == domain_of(domain), MailAddress.name == str(name).lower(),
                                    MailAddress.type == MAILBOX)


def aliases_of(box: MailAddress) -> list[MailAddress]:
    return list(MailAddress.select().where((MailAddress.type == ALIAS) & (MailAddress.alias_name == box.name)
                                           & (MailAddress.alias_domain == box.domain_id))
                .order_by(MailAddress.domain, MailAddress.name))


def view(box: MailAddress, aliases: list[MailAddress] | None = None) -> dict:
    """The Mailbox shape of the spec."""
    from core.times import iso
    aliases = aliases_of(box) if aliases is None else aliases
    return {"name": box.name, "domain": box.domain_id, "ownerId": box.owner_id, "ownerType": box.owner_type,
            "active": box.active, "aliases": [{"name": a.name, "domain": a.domain_id} for a in aliases],
            "creationTime": iso(box.creation_time)}


def list_mailboxes(domain: str, page: int = 1, per_page: int = 25, search: str | None = None) -> list[dict]:
    """Mailboxes of `domain` ordered by name, each with its aliases (one query for all of them)."""
    query = MailAddress.select().where((MailAddress.domain == domain_of(domain)) & (MailAddress.type == MAILBOX))
    if search:
        query = query.where(MailAddress.name.contains(search.strip().lower()))
    boxes = list(query.order_by(MailAddress.name).paginate(page, per_page))
    found: dict[str, list] = {b.name: [] for b in boxes}
    if boxes:
        for alias in (MailAddress.select().where((MailAddress.type == ALIAS)
                                                 & (MailAddress.alias_domain == boxes[0].domain_id)
                                                 & MailAddress.alias_name.in_(list(found)))
                      .order_by(MailAddress.domain, MailAddress.name)):
            found[alias.alias_name].append(alias)
    return [view(b, found[b.name]) for b in boxes]


def mailbox_count(domain: str) -> int:
    return MailAddress.select().where((MailAddress.domain == domain_of(domain))
                                      & (MailAddress.type == MAILBOX)).count()


def mailboxes_owned_by(user_id: str) -> list[MailAddress]:
    """Mailboxes a user may log in to: owned by them or by a group they are in."""
    from models import GroupMember
    groups = [m.group_id for m in GroupMember.select().where(GroupMember.user == user_id)]
    owner = (MailAddress.owner_type == "user") & (MailAddress.owner_id == user_id)
    if groups:
        owner = owner | ((MailAddress.owner_type == "group") & MailAddress.owner_id.in_(groups))
    return list(MailAddress.select().where((MailAddress.type == MAILBOX) & owner)
                .order_by(MailAddress.domain, MailAddress.name))


# ---- changing -------------------------------------------------------------------------------------

def add_mailbox(actor: eventlog.Actor, domain: str, body: dict) -> MailAddress:
    dom = domain_of(domain)
    name = check_name(body.get("name"))
    owner_id, owner_type = _owner(body.get("ownerId"), body.get("ownerType"))
    box = MailAddress(name=name, domain=dom, type=MAILBOX, owner_id=owner_id, owner_type=owner_type,
                      active=_active(body.get("active", True)))
    with database.atomic():
        insert(box, "mailbox")
        sync.apply()
    eventlog.record("mail.box.add", actor, domain=dom, name=name, ownerId=owner_id, ownerType=owner_type)
    return box


def update_mailbox(actor: eventlog.Actor, domain: str, name: str, body: dict) -> None:
    owner_id, owner_type = _owner(body.get("ownerId"), body.get("ownerType"))
    with database.atomic():
        box = get_mailbox(domain, name)
        box.owner_id, box.owner_type = owner_id, owner_type
        if body.get("active") is not None:
            box.active = _active(body["active"])
        box.save()
        sync.apply()
    eventlog.record("mail.box.update", actor, domain=box.domain_id, name=box.name, ownerId=owner_id,
                    ownerType=owner_type, active=box.active)


def remove_mailbox(actor: eventlog.Actor, domain: str, name: str, delete_mails: bool = False) -> None:
    """Remove a mailbox and its aliases. The stored mail stays unless `delete_mails` (then the
    server removes its Maildir)."""
    if not isinstance(delete_mails, bool):
        raise BadRequest("must be a boolean", "deleteMails")
    with database.atomic():
        box = get_mailbox(domain, name)
        MailAddress.delete().where((MailAddress.type == ALIAS) & (MailAddress.alias_name == box.name)
                                   & (MailAddress.alias_domain == box.domain_id)).execute()
        box.delete_instance()
        sync.apply()
    if delete_mails:
        # After the commit: the server no longer delivers to the address when its mail goes. A
        # refusal (a planted symlink) is logged: the mailbox is gone, and a 424 would invite a retry.
        try:
            mail_server.delete_maildir(box.address)
        except mail_server.MailServerError as e:
            log.warning("mail of removed mailbox %s not deleted: %s", box.address, e.message)
    eventlog.record("mail.box.remove", actor, domain=box.domain_id, name=box.name, deleteMails=delete_mails)


def list_aliases(domain: str, name: str, page: int = 1, per_page: int = 25) -> list[dict]:
    aliases = aliases_of(get_mailbox(domain, name))
    start = (page - 1) * per_page
    return [{"name": a.name, "domain": a.domain_id} for a in aliases[start:start + per_page]]


def set_aliases(actor: eventlog.Actor, domain: str, name: str, aliases: object) -> None:
    """Replace the aliases of a mailbox. Each is a {name, domain} on any domain of this Berth; one
    whose name is taken there (by another mailbox, alias or list) is a 409 and nothing changes."""
    if not isinstance(aliases, list):
        raise BadRequest("must be a list", "aliases")
    if len(aliases) > MAX_ALIASES:
        raise BadRequest(f"must hold at most {MAX_ALIASES} aliases", "aliases")
    wanted = []
    for i, alias in enumerate(aliases):
        if not isinstance(alias, dict):
            raise BadRequest("must be an object {name, domain}", f"aliases[{i}]")
        alias_name = check_name(alias.get("name"), f"aliases[{i}].name", ALIAS_NAME)
        if not isinstance(alias.get("domain"), str):
            raise BadRequest("is required", f"aliases[{i}].domain")
        alias_domain = domains.find(alias["domain"])
        if alias_domain is None:
            raise BadRequest(f"no such domain: {alias['domain']}", f"aliases[{i}].domain")
        wanted.append((alias_name, alias_domain.domain))
    wanted = list(dict.fromkeys(wanted))
    with database.atomic():
        box = get_mailbox(domain, name)
        MailAddress.delete().where((MailAddress.type == ALIAS) & (MailAddress.alias_name == box.name)
                                   & (MailAddress.alias_domain == box.domain_id)).execute()
        for alias_name, alias_domain in wanted:
            insert(MailAddress(name=alias_name, domain=alias_domain, type=ALIAS, alias_name=box.name,
                                alias_domain=box.domain_id), "alias")
        sync.apply()
    eventlog.record("mail.box.update", actor, domain=box.domain_id, name=box.name,
                    aliases=[{"name": n, "domain": d} for n, d in wanted])

