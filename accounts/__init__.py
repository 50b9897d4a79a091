"""Users and groups: the rules of who may be created, changed or removed, and by whom."""
import secrets
import uuid

import peewee

import eventlog
from accounts import passwords
from web.security import hash_secret
from core.errors import BadRequest, Conflict, DependencyFailed, Forbidden, NotFound, PreconditionFailed
from models import ROLE_RANK, ROLES, Group, GroupMember, User, database

RESERVED_NAMES = {"admin", "no-reply", "postmaster", "mailer-daemon", "admins", "users"}
MANAGER_ROLES = ("owner", "admin", "mailmanager", "usermanager")


def is_activated():
    return User.select().exists()


# ---- validation -------------------------------------------------------------------------------

def _check_username(username):
    if not 1 <= len(username) <= 199:
        raise BadRequest("must be 1 to 199 characters", "username")
    if username.lower() in RESERVED_NAMES:
        raise BadRequest(f"'{username}' is reserved", "username")
    if ".app" in username.lower():
        raise BadRequest("must not contain '.app'", "username")
    if not all(c.isascii() and (c.isalnum() or c in ".-") for c in username):
        raise BadRequest("may only contain letters, digits, '.' and '-'", "username")


def _check_email(email, field="email"):
    local, at, domain = email.partition("@")
    if not (local and at and "." in domain and " " not in email and len(email) <= 254):
        raise BadRequest("is not a valid email address", field)


def _role_from(fields):
    """The seed's `admin` boolean and the newer `role` both set the role; `role` wins."""
    role = fields.get("role")
    if role is None and "admin" in fields:
        role = "admin" if fields["admin"] else "user"
    if role is not None and role not in ROLES:
        raise BadRequest(f"must be one of {', '.join(ROLES)}", "role")
    return role


# ---- permission rules -------------------------------------------------------------------------

def _can_manage(actor, target):
    if actor.role == "owner" or actor.user_id == target.id:
        return True
    if actor.role == "admin":
        return target.role != "owner"
    return actor.role in MANAGER_ROLES and ROLE_RANK[target.role] > ROLE_RANK["usermanager"]


def _check_manage(actor, target):
    if not _can_manage(actor, target):
        raise Forbidden(f"A {actor.role} may not change a user with role '{target.role}'")


def _check_assign_role(actor, target, role):
    if target is not None and target.id == actor.user_id and role != target.role:
        raise Conflict("You cannot change your own role")
    if role == "user" or (target is not None and role == target.role):
        return
    if actor.role not in ("owner", "admin"):
        raise Forbidden("Only admins may assign roles")
    if ROLE_RANK[role] < ROLE_RANK[actor.role]:
        raise Forbidden(f"A {actor.role} may not assign the role '{role}'")


def _check_not_last_owner(target, new_role=None):
    if target.role == "owner" and new_role != "owner":
        owners = User.select().where((User.role == "owner") & (User.active == True)).count()  # noqa: E712
        if owners <= 1:
            raise Conflict("Cannot remove or demote the last owner")


# ---- users ------------------------------------------------------------------------------------

def get_user(user_id):
    user = User.get_or_none(User.id == user_id)
    if user is None:
        raise NotFound("No such user")
    return user


def _attach_links(objects, attr, own, other):
    """Set `attr` on each object to the ids linked to it through GroupMember (one query)."""
    by_id = {o.id: o for o in objects}
    for o in objects:
        setattr(o, attr, [])
    if by_id:
        for link in GroupMember.select(GroupMember.user, GroupMember.group).where(own.in_(list(by_id))):
            getattr(by_id[getattr(link, own.name + "_id")], attr).append(getattr(link, other.name + "_id"))
    return objects


def with_group_ids(users):
    """Set `group_ids` on each user; returns the users."""
    return _attach_links(users, "group_ids", GroupMember.user, GroupMember.group)


def list_users(page, per_page, search=None):
    query = User.select()
    if search:
        term = search.lower()
        query = query.where(User.username.contains(term) | User.email.contains(term)
                            | User.display_name.contains(search))
    columns = [f for f in User._meta.sorted_fields if f.name not in ("password_hash", "invite_token_hash")]
    query = query.select(*columns).order_by(User.sort_key, User.id)
    return with_group_ids(list(query.paginate(page, per_page)))


def create_user(actor, fields, role=None):
    """Create a user from API fields; `role` overrides (activation creates the owner)."""
    email = fields["email"].strip().lower()
    _check_email(email)
    username = fields.get("username")
    if username is not None:
        username = username.strip().lower()
        _check_username(username)
    role = role or _role_from(fields) or "user"
    if actor is not None:
        _check_assign_role(actor, None, role)
    password = fields.get("password")
    if password is not None:
        passwords.check_policy(password, username=username, email=email)
    _check_unique(username=username, email=email)
    user = User(id=f"uid-{uuid.uuid4()}", username=username, email=email,
                display_name=(fields.get("displayName") or "").strip(),
                fallback_email=(fields.get("fallbackEmail") or "").strip().lower(),
                password_hash=passwords.hash_password(password) if password else None, role=role)
    try:
        user.save(force_insert=True)
    except peewee.IntegrityError:
        raise Conflict("A user with this username or email already exists") from None
    if actor is not None:
        eventlog.record("user.add", actor, userId=user.id, username=username, email=email, role=role)
    return user


def _check_unique(username=None, email=None, exclude=None):
    query = User.select(User.id)
    if exclude:
        query = query.where(User.id != exclude)
    if username and query.where(User.username == username).exists():
        raise Conflict("A user with this username already exists")
    if email and query.where(User.email == email).exists():
        raise Conflict("A user with this email already exists")


def update_user(actor, user_id, fields):
    user = get_user(user_id)
    _check_manage(actor, user)
    changes = {}
    if fields.get("email") is not None:
        email = fields["email"].strip().lower()
        _check_email(email)
        _check_unique(email=email, exclude=user.id)
        changes["email"] = user.email = email
    if fields.get("fallbackEmail") is not None:
        fallback = fields["fallbackEmail"].strip().lower()
        if fallback:
            _check_email(fallback, "fallbackEmail")
        changes["fallbackEmail"] = user.fallback_email = fallback
    if fields.get("username") is not None:
        username = fields["username"].strip().lower()
        if user.username and username != user.username:
            raise Conflict("Username cannot be changed once set")
        _check_username(username)
        _check_unique(username=username, exclude=user.id)
        changes["username"] = user.username = username
    if fields.get("displayName") is not None:
        changes["displayName"] = user.display_name = fields["displayName"].strip()
    role = _role_from(fields)
    if role is not None and role != user.role:
        _check_assign_role(actor, user, role)
        _check_not_last_owner(user, role)
        changes["role"] = user.role = role
    if fields.get("active") is not None and fields["active"] != user.active:
        _set_active_checks(actor, user, fields["active"])
        changes["active"] = user.active = fields["active"]
    if changes:
        user.save()
        eventlog.record("user.update", actor, userId=user.id, **changes)
    return user


def _set_active_checks(actor, user, active):
    if user.id == actor.user_id and not active:
        raise Conflict("You cannot deactivate yourself")
    if not active:
        _check_not_last_owner(user)


def set_active(actor, user_id, active):
    return update_user(actor, user_id, {"active": active})


def delete_user(actor, user_id):
    user = get_user(user_id)
    if user.id == actor.user_id:
        raise Conflict("You cannot delete yourself")
    _check_manage(actor, user)
    _check_not_last_owner(user)
    with database.atomic():
        user.delete_instance(recursive=True)
    eventlog.record("user.remove", actor, userId=user.id, username=user.username)


def set_password(actor, user_id, password):
    user = get_user(user_id)
    _check_manage(actor, user)
    passwords.check_policy(password, username=user.username, email=user.email)
    user.password_hash = passwords.hash_password(password)
    user.save()
    eventlog.record("user.password", actor, userId=user.id)


def change_own_password(actor, current, new):
    user = get_user(actor.user_id)
    if not passwords.verify_password(user.password_hash, current):
        raise PreconditionFailed("password: the current password is wrong")
    passwords.check_policy(new, field="newPassword", username=user.username, email=user.email)
    user.password_hash = passwords.hash_password(new)
    user.save()
    eventlog.record("user.password", actor, userId=user.id)


def set_user_groups(actor, user_id, group_ids):
    user = get_user(user_id)
    _check_manage(actor, user)
    group_ids = list(dict.fromkeys(group_ids))
    found = {g.id for g in Group.select(Group.id).where(Group.id.in_(group_ids))} if group_ids else set()
    missing = [g for g in group_ids if g not in found]
    if missing:
        raise NotFound(f"No such group: {missing[0]}")
    with database.atomic():
        GroupMember.delete().where(GroupMember.user == user).execute()
        if group_ids:
            GroupMember.insert_many([{"user": user.id, "group": g} for g in group_ids]).execute()
    eventlog.record("user.update", actor, userId=user.id, groupIds=group_ids)


def create_invite(actor, user_id):
    user = get_user(user_id)
    _check_manage(actor, user)
    if user.source:
        raise Conflict("Invites are only for local users")
    token = secrets.token_hex(32)
    user.invite_token_hash = hash_secret(token)
    user.save()
    eventlog.record("user.invite", actor, userId=user.id)
    return token


def send_invite(actor, user_id):
    user = get_user(user_id)
    _check_manage(actor, user)
    if not user.invite_token_hash:
        raise Conflict("No invite was created for this user yet (call create_invite first)")
    raise DependencyFailed("Cannot send the invite: outgoing mail is not configured")


def make_owner(actor, user_id):
    user = get_user(user_id)
    if user.id == actor.user_id:
        raise Conflict("You are already the owner")
    if not user.active:
        raise Conflict("Cannot make an inactive user the owner")
    with database.atomic():
        User.update(role="admin").where(User.id == actor.user_id).execute()
        User.update(role="owner").where(User.id == user.id).execute()
    eventlog.record("user.transfer_ownership", actor, userId=user.id)


def update_profile(actor, fields):
    allowed = {k: fields[k] for k in ("email", "fallbackEmail", "displayName") if fields.get(k) is not None}
    return update_user(actor, actor.user_id, allowed)


# ---- groups -----------------------------------------------------------------------------------

def _check_group_name(name):
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise BadRequest("must be 1 to 200 characters", "name")
    if name.lower() in RESERVED_NAMES:
        raise BadRequest(f"'{name}' is reserved", "name")
    if not all(c.isascii() and (c.isalnum() or c in "_-") for c in name):
        raise BadRequest("may only contain letters, digits, '_' and '-'", "name")
    return name


def get_group(group_id):
    group = Group.get_or_none(Group.id == group_id)
    if group is None:
        raise NotFound("No such group")
    return group


def with_member_ids(groups):
    """Set `user_ids` on each group; returns the groups."""
    return _attach_links(groups, "user_ids", GroupMember.group, GroupMember.user)


def list_groups():
    return with_member_ids(list(Group.select().order_by(Group.name)))


def create_group(actor, name):
    name = _check_group_name(name)
    try:
        group = Group.create(id=f"gid-{uuid.uuid4()}", name=name)
    except peewee.IntegrityError:
        raise Conflict("A group with this name already exists") from None
    eventlog.record("group.add", actor, groupId=group.id, name=name)
    return group


def rename_group(actor, group_id, name):
    group = get_group(group_id)
    group.name = _check_group_name(name)
    try:
        group.save()
    except peewee.IntegrityError:
        raise Conflict("A group with this name already exists") from None
    eventlog.record("group.update", actor, groupId=group.id, name=group.name)


def set_group_members(actor, group_id, user_ids):
    group = get_group(group_id)
    user_ids = list(dict.fromkeys(user_ids))
    found = {u.id for u in User.select(User.id).where(User.id.in_(user_ids))} if user_ids else set()
    missing = [u for u in user_ids if u not in found]
    if missing:
        raise NotFound(f"No such user: {missing[0]}")
    with database.atomic():
        GroupMember.delete().where(GroupMember.group == group).execute()
        if user_ids:
            GroupMember.insert_many([{"user": u, "group": group.id} for u in user_ids]).execute()
    eventlog.record("group.update", actor, groupId=group.id, userIds=user_ids)


def delete_group(actor, group_id):
    group = get_group(group_id)
    with database.atomic():
        group.delete_instance(recursive=True)
    eventlog.record("group.remove", actor, groupId=group.id, name=group.name)
