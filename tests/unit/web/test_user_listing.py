"""GET /users reads records and dumps them with the precompiled UserSchema: the answer must be
what the model objects dumped by marshmallow gave, value for value and key for key."""
import datetime
import json

from accounts import users
from handlers import serialize
from models import Group, GroupMember, User


def _seed():
    groups = [Group.create(id=f"gid-{n}", name=f"group{n}") for n in range(3)]
    base = datetime.datetime(2024, 2, 29, 23, 59, 59, 999999)
    for n in range(30):
        name = None if n == 7 else f"{'zyx'[n % 3]}{n:02d}-user"
        User.create(id=f"uid-{n:02d}", username=name, email=f"u{n}@example.com",
                    fallback_email="" if n % 2 else f"f{n}@example.org",
                    display_name=("Zoë Ünïcode ✓" if n == 3 else f"User {n}"), role=("user", "admin", "owner",
                    "usermanager")[n % 4], active=n != 5, source="ldap" if n == 9 else "",
                    totp_enabled=n == 4, sort_key=name or f"~{n}",
                    creation_time=base + datetime.timedelta(seconds=n, microseconds=-n * 1000),
                    last_login_time=None if n % 3 else base.replace(microsecond=0))
        for g in groups[: n % 3]:
            GroupMember.create(group=g, user=f"uid-{n:02d}")


def _marshmallow(page, per_page, search=None):
    """The listing as it was built before records: model objects, marshmallow's Schema.dump."""
    query = User.select()
    if search:
        term = search.lower()
        query = query.where(User.username.contains(term) | User.email.contains(term)
                            | User.display_name.contains(search))
    rows = list(query.order_by(User.sort_key, User.id).paginate(page, per_page))
    return serialize.users.dump(users.with_group_ids(rows), many=True)


def test_listing_records_dump_exactly_as_the_schema_dumps_models(db):
    _seed()
    for args in [(1, 25), (2, 25), (1, 100), (3, 7), (9, 25), (1, 25, "USER 1"), (1, 5, "ünï"), (1, 25, "x")]:
        expected = _marshmallow(*args)
        got = serialize.user_records(users.list_users(*args))
        assert json.dumps(got) == json.dumps(expected), args
    everyone = serialize.user_records(users.list_users(1, 100))
    assert len(everyone) == 30 and any(u["groupIds"] for u in everyone) and any(u["lastLoginTime"] for u in everyone)


def test_compiled_dump_falls_back_to_marshmallow_for_a_record_missing_an_attribute(db):
    record = {"id": "uid-1", "username": "a", "email": "a@example.com", "role": "admin", "group_ids": ["g"]}
    assert serialize.user_records([record]) == serialize.users.dump([record], many=True)
