"""The role rules of accounts.roles, as pure functions: every pair that matters, no database."""
from types import SimpleNamespace

import pytest

from accounts import roles
from core.errors import BadRequest, Conflict, Forbidden
from eventlog import Actor
from models import ROLES


def actor(role, user_id="uid-actor"):
    return Actor(user_id=user_id, username=role, role=role)


def user(role, user_id="uid-target", active=True):
    return SimpleNamespace(id=user_id, role=role, active=active)


# Who may change whom: rows are the actor's role, columns the target's, in ROLES order.
MANAGE = {
    "owner":       (True, True, True, True, True),
    "admin":       (False, True, True, True, True),
    "mailmanager": (False, False, False, False, True),
    "usermanager": (False, False, False, False, True),
    "user":        (False, False, False, False, False),
}


@pytest.mark.parametrize("actor_role", ROLES)
@pytest.mark.parametrize("target_role", ROLES)
def test_can_manage_matrix(actor_role, target_role):
    expected = MANAGE[actor_role][ROLES.index(target_role)]
    assert roles.can_manage(actor(actor_role), user(target_role)) is expected
    if expected:
        roles.check_manage(actor(actor_role), user(target_role))
    else:
        with pytest.raises(Forbidden, match=f"may not change a user with role '{target_role}'"):
            roles.check_manage(actor(actor_role), user(target_role))


@pytest.mark.parametrize("role", ROLES)
def test_everyone_manages_themselves(role):
    assert roles.can_manage(actor(role, "uid-me"), user("owner" if role != "owner" else "user", "uid-me"))


@pytest.mark.parametrize("actor_role, role, allowed", [
    ("owner", "owner", True), ("owner", "admin", True), ("owner", "usermanager", True),
    ("admin", "owner", False), ("admin", "admin", True), ("admin", "mailmanager", True),
    ("usermanager", "admin", False), ("usermanager", "usermanager", False),
    ("usermanager", "user", True), ("mailmanager", "user", True), ("user", "user", True),
])
def test_assign_role_on_create(actor_role, role, allowed):
    if allowed:
        roles.check_assign_role(actor(actor_role), None, role)
    else:
        with pytest.raises(Forbidden):
            roles.check_assign_role(actor(actor_role), None, role)


def test_assign_unchanged_role_is_always_allowed():
    roles.check_assign_role(actor("usermanager"), user("admin"), "admin")


def test_nobody_changes_their_own_role():
    with pytest.raises(Conflict, match="own role"):
        roles.check_assign_role(actor("owner", "uid-me"), user("owner", "uid-me"), "admin")


def test_last_owner_rule():
    with pytest.raises(Conflict, match="last owner"):
        roles.check_not_last_owner(user("owner"), None, active_owners=1)
    with pytest.raises(Conflict, match="last owner"):
        roles.check_not_last_owner(user("owner"), "admin", active_owners=1)
    roles.check_not_last_owner(user("owner"), "admin", active_owners=2)
    roles.check_not_last_owner(user("owner"), "owner", active_owners=1)
    roles.check_not_last_owner(user("admin"), None, active_owners=1)


def test_role_from_fields():
    assert roles.role_from({"admin": True}) == "admin"
    assert roles.role_from({"admin": False}) == "user"
    assert roles.role_from({"admin": True, "role": "usermanager"}) == "usermanager"
    assert roles.role_from({}) is None
    with pytest.raises(BadRequest, match="^role:"):
        roles.role_from({"role": "root"})


def test_downgrade_is_fewer_rights():
    assert roles.is_downgrade("admin", "user") and roles.is_downgrade("owner", "admin")
    assert not roles.is_downgrade("user", "admin") and not roles.is_downgrade("admin", "admin")


@pytest.mark.parametrize("role", [r for r in ROLES if r != "owner"])
def test_only_the_owner_transfers_ownership_whatever_x_roles_says(role):
    # The trap of the layout review: x-roles is the only gate today; widen it and an admin would
    # crown anyone. The domain rule refuses every role but owner.
    with pytest.raises(Forbidden, match="Only the owner"):
        roles.check_transfer_ownership(actor(role), user("user"))


def test_transfer_ownership_targets():
    roles.check_transfer_ownership(actor("owner"), user("admin"))
    with pytest.raises(Conflict, match="already the owner"):
        roles.check_transfer_ownership(actor("owner", "uid-me"), user("owner", "uid-me"))
    with pytest.raises(Conflict, match="inactive"):
        roles.check_transfer_ownership(actor("owner"), user("user", active=False))


@pytest.mark.parametrize("actor_role, target_role, allowed", [
    ("owner", "owner", True), ("owner", "admin", True), ("admin", "user", True),
    ("admin", "admin", True), ("admin", "owner", False), ("usermanager", "user", False),
    ("mailmanager", "user", False), ("user", "user", False),
])
def test_revoke_sessions(actor_role, target_role, allowed):
    if allowed:
        roles.check_revoke_sessions(actor(actor_role), user(target_role))
    else:
        with pytest.raises(Forbidden):
            roles.check_revoke_sessions(actor(actor_role), user(target_role))


def test_membership_change_checks_every_changed_user():
    roles.check_membership_change(actor("usermanager"), [user("user"), user("user", "uid-2")])
    with pytest.raises(Forbidden, match="role 'owner'"):
        roles.check_membership_change(actor("usermanager"), [user("user"), user("owner", "uid-2")])
