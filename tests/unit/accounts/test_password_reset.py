"""The password reset secret of GET /users/{id}/password_reset_link is kept only as a hash, on a
throw-away SQLite database."""
import hashlib

import pytest

from core.errors import Conflict, Forbidden
from eventlog import Actor


@pytest.fixture
def db(tmp_path):
    from models import database, migrations, open_database
    open_database(f"sqlite:///{tmp_path / 'berth.db'}")
    migrations.migrate()
    yield tmp_path / "berth.db"
    database.close()


def _user(name, role, **extra):
    from accounts import users
    return users.create_user(None, {"username": name, "email": f"{name}@example.com", **extra}, role=role)


def test_reset_secret_is_stored_only_as_its_hash_and_replaced_by_the_next(db):
    from accounts import users
    from models import Event, User
    boss, pat = _user("boss", "owner"), _user("pat", "user")
    actor = Actor(boss.id, "boss", "owner")
    secret = users.create_password_reset(actor, pat.id)
    assert len(secret) == 64
    stored = User.get_by_id(pat.id).invite_token_hash
    assert stored == hashlib.sha256(secret.encode()).hexdigest()
    assert all(secret.encode() not in f.read_bytes() for f in db.parent.glob("berth.db*"))  # -wal too
    assert all(secret not in str(e.data) for e in Event.select())
    again = users.create_password_reset(actor, pat.id)
    assert again != secret and User.get_by_id(pat.id).invite_token_hash != stored


def test_reset_link_follows_the_role_rules_and_is_for_local_users_only(db):
    from accounts import users
    from models import User
    boss, adm, pat = _user("boss", "owner"), _user("adm", "admin"), _user("pat", "user")
    manager = _user("mgr", "usermanager")
    with pytest.raises(Forbidden):
        users.create_password_reset(Actor(manager.id, "mgr", "usermanager"), adm.id)
    assert User.get_by_id(adm.id).invite_token_hash is None
    User.update(source="ldap").where(User.id == pat.id).execute()
    with pytest.raises(Conflict):
        users.create_password_reset(Actor(boss.id, "boss", "owner"), pat.id)
