"""Users: who may be created, changed or removed, and by whom (the rules are in accounts.roles).

Changes that take rights or trust away from a user also end their sessions (accounts.tokens):
a password change or reset, deactivation and a role downgrade.
"""
import datetime
import secrets
import uuid
from collections.abc import Callable

import peewee

import eventlog
from accounts import app_passwords, directory_config, emails, membership, passwords, roles, tokens
from core.errors import BadRequest, Conflict, DependencyFailed, NotFound, PreconditionFailed
from models import Group, GroupMember, User, database

RESERVED_NAMES = {"admin", "no-reply", "postmaster", "mailer-daemon", "admins", "users"}


def is_activated() -> bool:
    """The instance has been activated: a user exists (see accounts.activation_lock for the lock)."""
    return User.select().exists()


# ---- validation -------------------------------------------------------------------------------

def check_username(username: str) -> None:
    if not 1 <= len(username) <= 199:
        raise BadRequest("must be 1 to 199 characters", "username")
    if username.lower() in RESERVED_NAMES:
        raise BadRequest(f"'{username}' is reserved", "username")
    if ".app" in username.lower():
        raise BadRequest("must not contain '.app'", "username")
    if not all(c.isascii() and (c.isalnum() or c in ".-") for c in username):
        raise BadRequest("may only contain letters, digits, '.' and '-'", "username")


def _check_unique(username=None, email=None, exclude=None):
    query = User.select(User.id)
    if exclude:
        query = query.where(User.id != exclude)
    if username and query.where(User.username == username).exists():
        raise Conflict("A user with this username already exists")
    if email and query.where(User.email == email).exists():
        raise Conflict("A user with this email already exists")


def _check_not_last_owner(target, new_role=None):
    if target.role == "owner" and new_role != "owner":  # count only when it can matter
        owners = User.select().where((User.role == "owner") & (User.active == True)).count()  # noqa: E712
        roles.check_not_last_owner(target, new_role, owners)


# ---- reading ----------------------------------------------------------------------------------

def get_user(user_id: str) -> User:
    return User.get_or_raise(NotFound("No such user"), User.id == user_id)


def with_group_ids(users: list) -> list:
    """Set `group_ids` on each user; returns the users."""
    return membership.attach(users, "group_ids", GroupMember.user, GroupMember.group)


# The columns a listing shows (never the password, invite or TOTP secrets).
LISTED_FIELDS = ("id", "username", "email", "fallback_email", "display_name", "role", "active", "source",
                 "totp_enabled", "creation_time", "last_login_time")
_listing_sql = None       # the unfiltered page query, built by Peewee once (the SQL of this database)
_membership_sql = {}      # number of users -> the group_member query for that many ids


def list_users(page: int, per_page: int, search: str | None = None) -> list[dict]:
    """One page of users in username order, as records: {field name: value} for LISTED_FIELDS
    plus `is_admin` and `group_ids` (the attributes handlers.serialize.UserSchema reads).

    The hottest list route (GET /users): rows are read as tuples, not model objects, and the
    SQL of the unfiltered page and of the membership query is built by Peewee once and reused;
    values are converted exactly as the model fields would (bench/api.py: this was two thirds
    of the handler's time)."""
    global _listing_sql
    columns = [User._meta.fields[name] for name in LISTED_FIELDS]
    if search:
        term = search.lower()
        query = User.select(*columns).where(User.username.contains(term) | User.email.contains(term)
                                            | User.display_name.contains(search))
        sql, params = query.order_by(User.sort_key, User.id).paginate(page, per_page).sql()
    else:
        if _listing_sql is None:
            _listing_sql = User.select(*columns).order_by(User.sort_key, User.id).paginate(1, 1).sql()[0]
        sql, params = _listing_sql, [per_page, max(page - 1, 0) * per_page]
    records = [_record(row) for row in database.execute_sql(sql, params)]
    if records:
        by_id = {r["id"]: r for r in records}
        for user_id, group_id in database.execute_sql(_membership_query(len(by_id)), list(by_id)):
            by_id[user_id]["group_ids"].append(group_id)
    return records


def _membership_query(count: int) -> str:
    sql = _membership_sql.get(count)
    if sql is None:
        sql = (GroupMember.select(GroupMember.user, GroupMember.group)
               .where(GroupMember.user.in_(["-"] * count)).sql()[0])
        if count <= 1000:
            _membership_sql[count] = sql
    return sql


_CREATED, _LAST_LOGIN = User.creation_time, User.last_login_time


def _record(row: tuple) -> dict:
    (user_id, username, email, fallback_email, display_name, role, active, source, totp_enabled,
     creation_time, last_login_time) = row  # LISTED_FIELDS
    return {"id": user_id, "username": username, "email": email, "fallback_email": fallback_email,
            "display_name": display_name, "role": role, "active": bool(active), "source": source,
            "totp_enabled": bool(totp_enabled), "creation_time": _datetime(_CREATED, creation_time),
            "last_login_time": _datetime(_LAST_LOGIN, last_login_time),
            "is_admin": role in ("owner", "admin"),  # as User.is_admin
            "group_ids": []}


def _datetime(field: peewee.DateTimeField, value):
    """What the model field would give for a stored value (SQLite: text; PostgreSQL: datetime).
    datetime.fromisoformat reads Peewee's own formats at a fraction of strptime's cost."""
    if isinstance(value, str):
        try:
            parsed = datetime.datetime.fromisoformat(value)
        except ValueError:
            return field.python_value(value)
        return parsed if parsed.tzinfo is None else field.python_value(value)
    return value


# ---- creating and changing --------------------------------------------------------------------

def create_user(actor: eventlog.Actor, fields: dict, role: str | None = None) -> User:
    """Create a user from API fields; `role` overrides (activation creates the owner, actor None)."""
    email = emails.check(fields.get("email"))
    fallback = emails.check_optional(fields.get("fallbackEmail") or "", "fallbackEmail")
    username = fields.get("username")
    if username is not None:
        username = username.strip().lower()
        check_username(username)
    role = role or roles.role_from(fields) or "user"
    if actor is not None:
        roles.check_assign_role(actor, None, role)
    password = fields.get("password")
    if password is not None:
        passwords.check_policy(password, username=username, email=email)
    _check_unique(username=username, email=email)
    user = User(id=f"uid-{uuid.uuid4()}", username=username, email=email,
                display_name=(fields.get("displayName") or "").strip(),
                fallback_email=fallback,
                password_hash=passwords.hash_password(password) if password else None, role=role)
    try:
        user.save(force_insert=True)
    except peewee.IntegrityError:
        raise Conflict("A user with this username or email already exists") from None
    if actor is not None:
        eventlog.record("user.add", actor, userId=user.id, username=username, email=email, role=role)
    return user


def update_user(actor: eventlog.Actor, user_id: str, fields: dict) -> User:
    user = get_user(user_id)
    roles.check_manage(actor, user)
    if user.id == actor.user_id and any(fields.get(k) is not None for k in PROFILE_FIELDS):
        # lockUserProfiles holds whichever route users take to their own profile.
        directory_config.check_profile_edit(actor)
    if user.source and any(fields.get(k) is not None and fields[k] != getattr(user, attr) for k, attr in
                           (("email", "email"), ("username", "username"), ("displayName", "display_name"))):
        raise Conflict("The profile of a user from the external directory is managed there")
    changes = {}
    # Nothing is saved before every check below has passed: a refused request changes nothing.
    email = emails.check(fields["email"]) if fields.get("email") is not None else None
    fallback = (emails.check_optional(fields["fallbackEmail"], "fallbackEmail")
                if fields.get("fallbackEmail") is not None else None)
    if email is not None:
        _check_unique(email=email, exclude=user.id)
        changes["email"] = user.email = email
    if fallback is not None:
        changes["fallbackEmail"] = user.fallback_email = fallback
    if fields.get("username") is not None:
        username = fields["username"].strip().lower()
        if user.username and username != user.username:
            raise Conflict("Username cannot be changed once set")
        check_username(username)
        _check_unique(username=username, exclude=user.id)
        changes["username"] = user.username = username
    if fields.get("displayName") is not None:
        changes["displayName"] = user.display_name = fields["displayName"].strip()
    revoke = False
    role = roles.role_from(fields)
    if role is not None and role != user.role:
        roles.check_assign_role(actor, user, role)
        _check_not_last_owner(user, role)
        # Sessions were opened with the old rights: the user logs in again with the new ones.
        revoke = roles.is_downgrade(user.role, role)
        changes["role"] = user.role = role
    if fields.get("active") is not None and fields["active"] != user.active:
        _check_active_change(actor, user, fields["active"])
        # Deleted, not only refused while inactive: reactivation must not bring them back.
        revoke = revoke or not fields["active"]
        changes["active"] = user.active = fields["active"]
    if changes:
        with database.atomic():
            user.save()
            revoked = tokens.revoke_all(user.id) if revoke else 0
        eventlog.record("user.update", actor, userId=user.id, **changes,
                        **({"revokedTokens": revoked} if revoke else {}))
    return user


def _check_active_change(actor, user, active):
    if user.id == actor.user_id and not active:
        raise Conflict("You cannot deactivate yourself")
    if not active:
        _check_not_last_owner(user)


# The narrower routes (seed-era POST /users/{id}/active, POST /profile; Cloudron 7+ PUT .../role,
# PUT .../active, POST .../profile) are update_user limited to their fields, so the role rules,
# the last-owner guard and the session revocation are the same whichever route a client uses.

PROFILE_FIELDS = ("email", "fallbackEmail", "displayName")


def set_active(actor: eventlog.Actor, user_id: str, active: bool) -> User:
    return update_user(actor, user_id, {"active": active})


def set_role(actor: eventlog.Actor, user_id: str, role: str) -> User:
    if role is None:
        raise BadRequest("is required", "role")
    return update_user(actor, user_id, {"role": role})


def update_user_profile(actor: eventlog.Actor, user_id: str, fields: dict) -> User:
    """Email, fallback email and display name of a user; other fields are ignored."""
    return update_user(actor, user_id, {k: fields[k] for k in PROFILE_FIELDS if fields.get(k) is not None})


def update_profile(actor: eventlog.Actor, fields: dict) -> User:
    return update_user_profile(actor, actor.user_id, fields)


def delete_user(actor: eventlog.Actor, user_id: str) -> None:
    user = get_user(user_id)
    if user.id == actor.user_id:
        raise Conflict("You cannot delete yourself")
    roles.check_manage(actor, user)
    _check_not_last_owner(user)
    with database.atomic():
        user.delete_instance(recursive=True)  # tokens, app passwords and memberships with it
    eventlog.record("user.remove", actor, userId=user.id, username=user.username)


# ---- passwords and sessions -------------------------------------------------------------------

def set_password(actor: eventlog.Actor, user_id: str, password: str, current_token_id: str | None = None) -> None:
    """A password reset by a manager. Whoever knew the old password may hold a session or have
    created app passwords: all of them go, except the caller's own current token (a manager
    resetting their own password through this route stays logged in)."""
    user = get_user(user_id)
    roles.check_manage(actor, user)
    if user.source:
        raise Conflict("The password of a user from the external directory is managed there")
    passwords.check_policy(password, username=user.username, email=user.email)
    user.password_hash = passwords.hash_password(password)
    with database.atomic():
        user.save()
        revoked = tokens.revoke_all(user.id, keep=current_token_id if user.id == actor.user_id else None)
        revoked_app = app_passwords.revoke_all(user.id)
    eventlog.record("user.password", actor, userId=user.id, revokedTokens=revoked,
                    revokedAppPasswords=revoked_app)


def change_own_password(actor: eventlog.Actor, current: str, new: str, current_token_id: str | None = None) -> None:
    """The user's own change: their other sessions end, the one making the change stays. App
    passwords are the user's own deliberate creations and stay."""
    user = get_user(actor.user_id)
    if not passwords.verify_password(user.password_hash, current):
        raise PreconditionFailed("password: the current password is wrong")
    passwords.check_policy(new, field="newPassword", username=user.username, email=user.email)
    user.password_hash = passwords.hash_password(new)
    with database.atomic():
        user.save()
        revoked = tokens.revoke_all(user.id, keep=current_token_id)
    eventlog.record("user.password", actor, userId=user.id, revokedTokens=revoked)


def revoke_sessions(actor: eventlog.Actor, user_id: str, current_token_id: str | None = None) -> int:
    """Log a user out everywhere (every token: sessions and API tokens). On oneself the caller's
    current token stays. Returns how many tokens were revoked."""
    user = get_user(user_id)
    roles.check_revoke_sessions(actor, user)
    revoked = tokens.revoke_all(user.id, keep=current_token_id if user.id == actor.user_id else None)
    eventlog.record("user.logout_everywhere", actor, userId=user.id, revokedTokens=revoked)
    return revoked


# ---- groups, invites, ownership -----------------------------------------------------------------

def set_user_groups(actor: eventlog.Actor, user_id: str, group_ids: list) -> None:
    user = get_user(user_id)
    roles.check_manage(actor, user)
    group_ids = list(dict.fromkeys(group_ids))
    membership.check_exist(Group, group_ids, "group")
    membership.replace(GroupMember.user, user.id, GroupMember.group, group_ids)
    eventlog.record("user.update", actor, userId=user.id, groupIds=group_ids)


def create_invite(actor: eventlog.Actor, user_id: str) -> str:
    user = get_user(user_id)
    roles.check_manage(actor, user)
    if user.source:
        raise Conflict("Invites are only for local users")
    token = secrets.token_hex(32)
    user.invite_token_hash = tokens.hash_secret(token)
    user.save()
    eventlog.record("user.invite", actor, userId=user.id)
    return token


def send_invite(actor: eventlog.Actor, user_id: str, email: str | None = None,
                deliver: Callable[[User, str, str], None] | None = None) -> None:
    """Mail an invite (to `email` when given, Cloudron 7+, else the user's address) through
    `deliver(user, address, secret)`, which the mail layer passes (accounts sits below mail and
    cannot send). Only the invite's hash is kept, so the mail carries a new secret, which replaces
    the one create_invite made, as a new reset link does. Without `deliver` the answer is 424."""
    user = get_user(user_id)
    roles.check_manage(actor, user)
    address = emails.check(email) if email is not None else user.email
    if not user.invite_token_hash:
        raise Conflict("No invite was created for this user yet (call create_invite first)")
    if deliver is None:
        raise DependencyFailed("Cannot send the invite: outgoing mail is not configured")
    secret = secrets.token_hex(32)
    deliver(user, address, secret)  # raises DependencyFailed when the mail cannot go out
    user.invite_token_hash = tokens.hash_secret(secret)
    user.save()
    eventlog.record("user.invite", actor, userId=user.id, mailSentTo=address)


def create_password_reset(actor: eventlog.Actor, user_id: str) -> str:
    """A new password reset secret for a local user, for a manager to hand over (Cloudron 7+'s
    password_reset_link). Returns the secret; only its hash is kept.

    It is kept where the invite's is, as Cloudron keeps both in one reset token: a user has one
    outstanding secret to set a password with, and issuing either invalidates the previous one,
    so a leaked older link is dead as soon as a new one is made."""
    user = get_user(user_id)
    roles.check_manage(actor, user)
    if user.source:
        raise Conflict("Password reset links are only for local users")
    secret = secrets.token_hex(32)
    user.invite_token_hash = tokens.hash_secret(secret)
    user.save()
    eventlog.record("user.password_reset_link", actor, userId=user.id)
    return secret


def make_owner(actor: eventlog.Actor, user_id: str) -> None:
    """Transfer ownership: the target becomes owner, the actor (who must be the owner) admin."""
    user = get_user(user_id)
    roles.check_transfer_ownership(actor, user)
    with database.atomic():
        User.update(role="admin").where(User.id == actor.user_id).execute()
        User.update(role="owner").where(User.id == user.id).execute()
    eventlog.record("user.transfer_ownership", actor, userId=user.id)
