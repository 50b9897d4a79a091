"""make_owner enforces "only the owner" in domain code, on a throw-away SQLite database: an admin
calling it (as if x-roles had been widened) changes nobody's role."""
import pytest

from core.errors import Forbidden
from eventlog import Actor


@pytest.fixture
def db(tmp_path):
    from models import database, migrations, open_database
    open_database(f"sqlite:///{tmp_path / 'berth.db'}")
    migrations.migrate()
    yield
    database.close()


def _user(name, role):
    from accounts import users
    return users.create_user(None, {"username": name, "email": f"{name}@example.com"}, role=role)


def test_admin_calling_make_owner_directly_is_refused_and_changes_no_role(db):
    from accounts import users
    from models import User
    owner, admin, plain = _user("boss", "owner"), _user("adm", "admin"), _user("pat", "user")
    with pytest.raises(Forbidden, match="Only the owner"):
        users.make_owner(Actor(admin.id, "adm", "admin"), plain.id)
    assert {u.username: u.role for u in User.select()} == {"boss": "owner", "adm": "admin", "pat": "user"}
    users.make_owner(Actor(owner.id, "boss", "owner"), plain.id)
    assert {u.username: u.role for u in User.select()} == {"boss": "admin", "adm": "admin", "pat": "owner"}
