"""Who sees which app (GET /apps, GET /apps/{id}/icon): owners and admins every app; others the
apps without a restriction and those that list them or one of their groups."""
import pytest

from core.errors import NotFound
from eventlog import Actor


class Row:
    def __init__(self, restriction):
        self.access_restriction = restriction


@pytest.mark.parametrize("restriction, user, groups, expected", [
    (None, "u1", [], True),
    ({}, "u1", [], True),
    ({"users": ["u1"], "groups": []}, "u1", [], True),
    ({"users": ["u2"], "groups": []}, "u1", [], False),
    ({"users": [], "groups": []}, "u1", ["g1"], False),
    ({"users": [], "groups": ["g1"]}, "u1", ["g2", "g1"], True),
    ({"users": [], "groups": ["g1"]}, "u1", ["g2"], False),
])
def test_may_access_for_plain_roles(restriction, user, groups, expected):
    import apps
    for role in ("user", "usermanager", "mailmanager"):
        assert apps.may_access(Row(restriction), user, role, groups) is expected
    for role in ("owner", "admin"):
        assert apps.may_access(Row(restriction), user, role, groups) is True


def test_visible_apps_and_the_icon_follow_the_same_rule(make_app):
    import apps
    from models import Group, GroupMember, User
    boss = User.create(id="boss-id", username="boss", email="boss@example.com", role="owner")
    pat = User.create(id="pat-id", username="pat", email="pat@example.com", role="user")
    team = Group.create(id="team-id", name="team")
    GroupMember.create(user=pat.id, group=team.id)
    open_app = make_app("open")
    named = make_app("named", access_restriction={"users": [pat.id], "groups": []})
    by_group = make_app("group", access_restriction={"users": [], "groups": [team.id]})
    closed = make_app("closed", access_restriction={"users": [], "groups": []})

    owner, user = Actor(boss.id, "boss", "owner"), Actor(pat.id, "pat", "user")
    assert apps.sees_everything(owner) and not apps.sees_everything(user)
    assert {a.id for a in apps.visible_apps(owner)} == {open_app.id, named.id, by_group.id, closed.id}
    assert {a.id for a in apps.visible_apps(user)} == {open_app.id, named.id, by_group.id}
    assert apps.get_visible_app(user, named.id).id == named.id
    with pytest.raises(NotFound):
        apps.get_visible_app(user, closed.id)
    with pytest.raises(NotFound):
        apps.read_icon(user, closed.id)          # refused before the file is even looked for
    with pytest.raises(NotFound, match="has no icon"):
        apps.read_icon(owner, closed.id)
