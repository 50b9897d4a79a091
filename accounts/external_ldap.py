"""Users and groups from an external LDAP directory (`/settings/external_ldap_config`,
`/cloudron/sync_external_ldap`).

- The config is accepted only after a bind with it worked and the user search (and, with
  syncGroups, the group search) ran: a typo must not be saved and then break every directory login.
  Bad credentials or a bad base DN/filter are 400; a server that cannot be reached is 424.
- The bind password is sealed at rest with the same key as TOTP secrets (core.sealing: a 0600 key
  file outside the database), answered as core.masking.MASK, and never logged or put in the event log.
- The sync (task body `ldap.sync`, type syncExternalLdap) creates or updates users (username,
  email, display name) marked source "ldap" with the entry's DN, and with syncGroups the groups
  and their members. A local user or group that already has the name is left alone (logged): a
  directory must not take over an account it does not own. Nothing is deleted.
- Directory users have no local password: login binds to the directory as them (check_password),
  so a password changed or an account locked there counts at once. An empty password is refused
  before any bind, since LDAP treats a DN with no password as an anonymous bind that "succeeds".
- ldap3 (~6 MB, 170 modules) is imported by the functions that talk to the directory or parse
  its names, not at the top: every server worker imports this module for logins and settings,
  and a Berth without a directory should not carry the library (issue 18, idle memory).
"""
from __future__ import annotations

import contextlib
import ssl
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import eventlog
import tasks
from accounts import emails, membership, passwords
from accounts.groups import _check_group_name
from accounts.users import check_username
from core import sealing
from core.errors import ApiError, BadRequest, Conflict, DependencyFailed
from core.masking import MASK
from models import Group, GroupMember, Setting, User
from tasks.context import TaskContext

if TYPE_CHECKING:
    import ldap3

SETTING = "external_ldap_config"
SOURCE = "ldap"
SEAL_CONTEXT = "external-ldap-bind-password"   # associated data of the sealed bind password
CONNECT_TIMEOUT = 5     # seconds: a login must not hang on a dead directory
RECEIVE_TIMEOUT = 15
TEXT_FIELDS = ("url", "baseDn", "filter", "usernameField", "bindDn", "groupBaseDn", "groupFilter", "groupnameField")
FIELD_DEFAULTS = {"usernameField": "uid", "groupnameField": "cn"}
USER_ATTRIBUTES = ("mail", "displayName", "cn", "givenName", "sn")
MEMBER_ATTRIBUTES = ("member", "uniqueMember", "memberUid")


# ---- config ---------------------------------------------------------------------------------------

def _stored() -> dict:
    return Setting.read(SETTING) or {"provider": "noop"}


def enabled() -> bool:
    return _stored().get("provider", "noop") != "noop"


def _bind_password(cfg: dict) -> str:
    sealed = cfg.get("bindPassword")
    if not sealed:
        return ""
    password = sealing.unseal(sealed, SEAL_CONTEXT)
    if password is None:
        raise DependencyFailed("The stored LDAP bind password cannot be read on this server: set the config again")
    return password


def get_config() -> dict:
    """The config as the API shows it: the bind password masked."""
    cfg = {k: v for k, v in _stored().items() if k != "bindPassword"}
    if _stored().get("bindPassword"):
        cfg["bindPassword"] = MASK
    return cfg


def validate(body: dict, stored: dict) -> tuple[dict, str]:
    """(config without the password, bind password in clear). MASK keeps the stored password."""
    provider = body.get("provider") or "noop"
    if provider == "noop":
        return {"provider": "noop"}, ""
    cfg: dict = {"provider": provider}
    for name in TEXT_FIELDS:
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise BadRequest("must be a string", name)
        cfg[name] = (value or "").strip() or FIELD_DEFAULTS.get(name, "")
    cfg["autoCreate"] = bool(body.get("autoCreate"))
    cfg["syncGroups"] = bool(body.get("syncGroups"))
    required = ["url", "baseDn", "filter"] + (["groupBaseDn", "groupFilter"] if cfg["syncGroups"] else [])
    for name in required:
        if not cfg[name]:
            raise BadRequest("is required", name)
    if not cfg["url"].lower().startswith(("ldap://", "ldaps://")):
        raise BadRequest("must start with ldap:// or ldaps://", "url")
    for name in ("filter", "groupFilter"):
        if cfg[name] and not (cfg[name].startswith("(") and cfg[name].endswith(")")):
            raise BadRequest("must be an LDAP filter in parentheses, e.g. (objectClass=inetOrgPerson)", name)
    password = body.get("bindPassword") or ""
    if password == MASK:
        password = _bind_password(stored) if stored.get("provider", "noop") != "noop" else ""
    if cfg["bindDn"] and not password:
        raise BadRequest("is required with bindDn (an empty password would be an anonymous bind)", "bindPassword")
    return cfg, password


def set_config(actor: eventlog.Actor, body: dict) -> None:
    """Check the config against the server, then store it (nothing is stored when the check fails)."""
    cfg, password = validate(body, _stored())
    if cfg["provider"] != "noop":
        with _connection(cfg, cfg["bindDn"], password) as conn:
            _search(conn, cfg["baseDn"], cfg["filter"], [cfg["usernameField"]], "baseDn", size_limit=1)
            if cfg["syncGroups"]:
                _search(conn, cfg["groupBaseDn"], cfg["groupFilter"], [cfg["groupnameField"]], "groupBaseDn",
                        size_limit=1)
    stored = dict(cfg, bindPassword=sealing.seal(password, SEAL_CONTEXT) if password else "")
    Setting.put(SETTING, stored)
    eventlog.record("cloudron.settings", actor, setting=SETTING,
                    value={k: v for k, v in cfg.items() if k != "bindPassword"})


# ---- talking to the directory ---------------------------------------------------------------------

@contextlib.contextmanager
def _connection(cfg: dict, dn: str, password: str) -> Iterator[ldap3.Connection]:
    """A bound connection (anonymous when dn is empty), unbound after; 400 when the bind is
    refused, 424 when the server cannot be reached. ldaps:// checks the certificate (system CAs)."""
    import ldap3
    from ldap3.core import exceptions as ldap_errors
    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED)
    try:
        server = ldap3.Server(cfg["url"], connect_timeout=CONNECT_TIMEOUT, get_info=ldap3.NONE, tls=tls)
        conn = ldap3.Connection(server, user=dn or None, password=password or None, read_only=True,
                                receive_timeout=RECEIVE_TIMEOUT, raise_exceptions=False)
        bound = conn.bind()
    except ldap_errors.LDAPSocketOpenError as e:
        raise DependencyFailed(f"Cannot reach the LDAP server at {cfg['url']}: {e}") from None
    except (ldap_errors.LDAPCommunicationError, ldap_errors.LDAPStartTLSError) as e:
        raise DependencyFailed(f"The LDAP server at {cfg['url']} failed: {e}") from None
    except ldap_errors.LDAPException as e:
        raise BadRequest(f"LDAP: {e}") from None
    try:
        if not bound:
            result = conn.result or {}
            raise BadRequest(f"The LDAP server refused the bind: {result.get('description') or 'error'}"
                             + (f" ({result['message']})" if result.get("message") else ""))
        yield conn
    finally:
        try:
            conn.unbind()
        except ldap_errors.LDAPException:
            pass


def _search(conn: ldap3.Connection, base: str, query: str, attributes: list, field: str,
            size_limit: int = 0) -> list:
    """The entries (dicts dn, attributes) under `base` matching `query`; 400 naming `field` when
    the directory refuses the search (no such base, bad filter)."""
    import ldap3
    from ldap3.core import exceptions as ldap_errors
    try:
        found = conn.extend.standard.paged_search(base, query, search_scope=ldap3.SUBTREE,
                                                  attributes=list(attributes), paged_size=500,
                                                  size_limit=size_limit, generator=False)
    except ldap_errors.LDAPInvalidFilterError as e:
        raise BadRequest(f"is not a valid LDAP filter: {e}", "filter" if field == "baseDn" else "groupFilter") from None
    except ldap_errors.LDAPCommunicationError as e:
        raise DependencyFailed(f"The LDAP server failed during a search: {e}") from None
    except ldap_errors.LDAPException as e:
        raise BadRequest(f"the LDAP search failed: {e}", field) from None
    result = conn.result or {}
    if result.get("result", 0) not in (0, 4):   # 4: sizeLimitExceeded, fine for a check
        raise BadRequest(f"the LDAP search failed: {result.get('description')}", field)
    return [e for e in found if e.get("type") == "searchResEntry"]


def _first(entry: dict, name: str) -> str:
    value = (entry.get("attributes") or {}).get(name)
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value or "").strip()


def normalise_dn(dn: str) -> str:
    """A DN compared as the directory does: attribute names and values case-folded, no spaces
    around separators (group `member` values and search results may spell one DN differently)."""
    from ldap3.core import exceptions as ldap_errors
    from ldap3.utils.dn import parse_dn
    try:
        parts = parse_dn(dn, strip=True)
        return ",".join(f"{attr.strip().lower()}={value.strip().lower()}" for attr, value, _ in parts)
    except (ldap_errors.LDAPInvalidDnError, ValueError):
        return dn.strip().lower()


def _user_filter(cfg: dict, username: str) -> str:
    from ldap3.utils.conv import escape_filter_chars
    return f"(&{cfg['filter']}({cfg['usernameField']}={escape_filter_chars(username)}))"


def _profile(cfg: dict, entry: dict) -> dict | None:
    """username, email, displayName and dn of a user entry; None when it lacks a name or mail."""
    username = _first(entry, cfg["usernameField"]).lower()
    email = _first(entry, "mail").lower()
    if not username or not email:
        return None
    display = (_first(entry, "displayName") or _first(entry, "cn")
               or " ".join(p for p in (_first(entry, "givenName"), _first(entry, "sn")) if p))
    return {"username": username, "email": email, "displayName": display, "dn": normalise_dn(entry["dn"])}


# ---- login ----------------------------------------------------------------------------------------

def _find_entry(cfg: dict, username: str) -> dict | None:
    with _connection(cfg, cfg["bindDn"], _bind_password(cfg)) as conn:
        attributes = [cfg["usernameField"], *USER_ATTRIBUTES]
        found = _search(conn, cfg["baseDn"], _user_filter(cfg, username), attributes, "baseDn", size_limit=2)
    return found[0] if len(found) == 1 else None


def _bind_as(cfg: dict, dn: str, password: str) -> bool:
    try:
        with _connection(cfg, dn, password):
            return True
    except BadRequest:
        return False


def verify_password(user: User, password: str | None) -> bool:
    """Does the directory accept `password` for this directory user? False (never an error) when
    it does not, when the directory is off, or cannot be reached: a login is refused either way."""
    cfg = _stored()
    if not password or cfg.get("provider", "noop") == "noop" or not user.username:
        return False
    try:
        entry = _find_entry(cfg, user.username)
        return entry is not None and _bind_as(cfg, entry["dn"], password)
    except ApiError:
        return False


def check_password(user: User | None, hashed: str, password: str | None) -> bool:
    """The login password check: a bind to the directory for its users, argon2 for everyone else
    (`hashed` is passwords.DUMMY_HASH when no user matched, so the time does not tell)."""
    if user is not None and user.source == SOURCE:
        return verify_password(user, password)
    return passwords.verify_password(hashed, password)


def auto_create(username: str, password: str | None) -> User | None:
    """With autoCreate, a login name unknown here but accepted by the directory becomes a local
    directory user (Cloudron's "create users on first login"). None otherwise."""
    cfg = _stored()
    if not (cfg.get("autoCreate") and cfg.get("provider", "noop") != "noop" and username and password):
        return None
    try:
        entry = _find_entry(cfg, username)
        if entry is None or not _bind_as(cfg, entry["dn"], password):
            return None
        profile = _profile(cfg, entry)
        return _upsert_user(profile, lambda line: None) if profile else None
    except ApiError:
        return None


# ---- sync -----------------------------------------------------------------------------------------

def start_sync(actor: eventlog.Actor) -> int:
    """Queue the syncExternalLdap task; 409 while the directory is off."""
    if not enabled():
        raise Conflict("The external directory is not configured (provider is noop)")
    task_id = tasks.start("syncExternalLdap", "ldap.sync", {}, locks=["external_ldap"])
    eventlog.record("cloudron.sync_external_ldap", actor, taskId=task_id)
    return task_id


def _upsert_user(profile: dict, log) -> User | None:
    """Create or update the directory user of `profile`; None (logged) when it cannot be."""
    username, email = profile["username"], profile["email"]
    try:
        check_username(username)
        emails.check(email)
    except BadRequest as e:
        log(f"Skipping {username!r}: {e.message}")
        return None
    user = User.get_or_none(User.username == username)
    if user is not None and user.source != SOURCE:
        log(f"Skipping {username}: a local user has this username")
        return None
    owner_of_email = User.get_or_none(User.email == email)
    if owner_of_email is not None and (user is None or owner_of_email.id != user.id):
        log(f"Skipping {username}: another user has the email {email}")
        return None
    if user is None:
        user = User(id=f"uid-{uuid.uuid4()}", username=username, email=email, display_name=profile["displayName"],
                    source=SOURCE, external_dn=profile["dn"], password_hash=None, role="user")
        user.save(force_insert=True)
        eventlog.record("user.add", eventlog.SYSTEM, userId=user.id, username=username, email=email, source=SOURCE)
        log(f"Created user {username}")
        return user
    changes = {k: v for k, v in (("email", email), ("display_name", profile["displayName"]),
                                 ("external_dn", profile["dn"])) if getattr(user, k) != v}
    if changes:
        for k, v in changes.items():
            setattr(user, k, v)
        user.save()
        eventlog.record("user.update", eventlog.SYSTEM, userId=user.id, fields=sorted(changes))
        log(f"Updated user {username}: {', '.join(sorted(changes))}")
    return user


def _sync_groups(task: TaskContext, cfg: dict, conn: ldap3.Connection, users_by_dn: dict) -> dict:
    counts = {"created": 0, "updated": 0, "skipped": 0}
    attributes = [cfg["groupnameField"], *MEMBER_ATTRIBUTES]
    entries = _search(conn, cfg["groupBaseDn"], cfg["groupFilter"], attributes, "groupBaseDn")
    by_username = {u.username: u.id for u in User.select(User.id, User.username).where(User.source == SOURCE)}
    for i, entry in enumerate(entries):
        task.progress(60 + int(35 * i / max(len(entries), 1)))
        name = _first(entry, cfg["groupnameField"]).lower()
        try:
            name = _check_group_name(name)
        except BadRequest as e:
            task.log(f"Skipping group {name!r}: {e.message}")
            counts["skipped"] += 1
            continue
        group = Group.get_or_none(Group.name == name)
        if group is not None and group.source != SOURCE:
            task.log(f"Skipping group {name}: a local group has this name")
            counts["skipped"] += 1
            continue
        attrs = entry.get("attributes") or {}
        members = {users_by_dn[normalise_dn(dn)] for key in ("member", "uniqueMember")
                   for dn in attrs.get(key) or [] if normalise_dn(dn) in users_by_dn}
        members |= {by_username[uid.lower()] for uid in attrs.get("memberUid") or [] if uid.lower() in by_username}
        if group is None:
            group = Group.create(id=f"gid-{uuid.uuid4()}", name=name, source=SOURCE,
                                 external_dn=normalise_dn(entry["dn"]))
            eventlog.record("group.add", eventlog.SYSTEM, groupId=group.id, name=name, source=SOURCE)
            task.log(f"Created group {name}")
            counts["created"] += 1
        elif membership.current(GroupMember.group, group.id, GroupMember.user) != members:
            task.log(f"Updated members of group {name}")
            counts["updated"] += 1
        membership.replace(GroupMember.group, group.id, GroupMember.user, sorted(members))
    return counts


def sync(task: TaskContext, **_: object) -> dict:
    """Task body `ldap.sync`: import users (and with syncGroups groups and members) from the directory."""
    cfg = _stored()
    if cfg.get("provider", "noop") == "noop":
        raise Conflict("The external directory is not configured (provider is noop)")
    task.progress(5, f"Connecting to {cfg['url']}")
    with _connection(cfg, cfg["bindDn"], _bind_password(cfg)) as conn:
        task.progress(10, "Searching users")
        entries = _search(conn, cfg["baseDn"], cfg["filter"], [cfg["usernameField"], *USER_ATTRIBUTES], "baseDn")
        task.log(f"{len(entries)} user entries found")
        users = {"created": 0, "updated": 0, "skipped": 0}
        users_by_dn = {}
        for i, entry in enumerate(entries):
            task.progress(10 + int(50 * i / max(len(entries), 1)))
            profile = _profile(cfg, entry)
            if profile is None:
                task.log(f"Skipping {entry['dn']}: no {cfg['usernameField']} or no mail")
                users["skipped"] += 1
                continue
            existed = User.get_or_none((User.username == profile["username"]) & (User.source == SOURCE))
            before = (existed.email, existed.display_name, existed.external_dn) if existed else None
            user = _upsert_user(profile, task.log)
            if user is None:
                users["skipped"] += 1
                continue
            users_by_dn[profile["dn"]] = user.id
            if existed is None:
                users["created"] += 1
            elif before != (user.email, user.display_name, user.external_dn):
                users["updated"] += 1
        groups = _sync_groups(task, cfg, conn, users_by_dn) if cfg.get("syncGroups") else None
    summary = f"Users: {users['created']} created, {users['updated']} updated, {users['skipped']} skipped"
    if groups is not None:
        summary += f"; groups: {groups['created']} created, {groups['updated']} updated, {groups['skipped']} skipped"
    task.progress(100, summary)
    return {"users": users, **({"groups": groups} if groups is not None else {})}
