"""Who may do what to whom: the role rules of user management, as pure functions.

Every function takes the actor (an `eventlog.Actor`: `user_id`, `role`) and plain facts about the
target (anything with `id` and `role`, usually a `models.User`), reads nothing from the database
and raises the API error that explains a refusal. The spec's `x-roles` is the first gate; these
rules are the second, so widening `x-roles` never widens what an operation may do.
"""
from collections.abc import Iterable

from core.errors import BadRequest, Conflict, Forbidden
from eventlog import Actor
from models import ROLE_RANK, ROLES, User

MANAGER_ROLES = ("owner", "admin", "mailmanager", "usermanager")
ADMIN_ROLES = ("owner", "admin")


def role_from(fields: dict) -> str | None:
    """The seed's `admin` boolean and the newer `role` both set the role; `role` wins."""
    role = fields.get("role")
    if role is None and "admin" in fields:
        role = "admin" if fields["admin"] else "user"
    if role is not None and role not in ROLES:
        raise BadRequest(f"must be one of {', '.join(ROLES)}", "role")
    return role


def can_manage(actor: Actor, target: User) -> bool:
    """An owner manages everyone, anyone manages themselves, an admin everyone but owners, and
    the other manager roles only plain users (ranks below usermanager)."""
    if actor.role == "owner" or actor.user_id == target.id:
        return True
    if actor.role == "admin":
        return target.role != "owner"
    return actor.role in MANAGER_ROLES and ROLE_RANK[target.role] > ROLE_RANK["usermanager"]


def check_manage(actor: Actor, target: User) -> None:
    if not can_manage(actor, target):
        raise Forbidden(f"A {actor.role} may not change a user with role '{target.role}'")


def check_assign_role(actor: Actor, target: User | None, role: str) -> None:
    """May `actor` give `role` to `target` (None: a user being created)?"""
    if target is not None and target.id == actor.user_id and role != target.role:
        raise Conflict("You cannot change your own role")
    if role == "user" or (target is not None and role == target.role):
        return
    if actor.role not in ADMIN_ROLES:
        raise Forbidden("Only admins may assign roles")
    if ROLE_RANK[role] < ROLE_RANK[actor.role]:
        raise Forbidden(f"A {actor.role} may not assign the role '{role}'")


def check_not_last_owner(target: User, new_role: str | None, active_owners: int) -> None:
    """Refuse to remove, deactivate or demote (`new_role` None or not owner) the last active owner:
    an instance without an owner cannot be administered."""
    if target.role == "owner" and new_role != "owner" and active_owners <= 1:
        raise Conflict("Cannot remove or demote the last owner")


def is_downgrade(old_role: str, new_role: str) -> bool:
    """Fewer rights than before (a higher rank): the user's sessions are revoked."""
    return ROLE_RANK[new_role] > ROLE_RANK[old_role]


def check_transfer_ownership(actor: Actor, target: User) -> None:
    """Only the owner hands over ownership (the actor becomes admin, the target owner). Checked
    here and not only through `x-roles: [owner]`: if the spec ever let an admin call it, the admin
    would otherwise crown anyone while the real owner stayed owner."""
    if actor.role != "owner":
        raise Forbidden("Only the owner may transfer ownership")
    if target.id == actor.user_id:
        raise Conflict("You are already the owner")
    if not target.active:
        raise Conflict("Cannot make an inactive user the owner")


def check_revoke_sessions(actor: Actor, target: User) -> None:
    """Logging another user out everywhere is for owners and admins, within what they manage."""
    if actor.role not in ADMIN_ROLES:
        raise Forbidden("Only admins may revoke the sessions of a user")
    check_manage(actor, target)


def check_membership_change(actor: Actor, users: Iterable[User]) -> None:
    """Adding a user to a group or removing one is a change to that user: the same rule as
    `PUT /users/{id}/groups`, whichever side the membership is edited from."""
    for user in users:
        check_manage(actor, user)
