"""eventlog.list_events on a throw-away SQLite database: the `actions` list as Cloudron's dashboard
sends it, and `search` through action, source and data (PostgreSQL is covered by the API tests)."""
import pytest

import eventlog
from eventlog import Actor

ALICE = Actor("uid-alice", "alice", "admin", "10.0.0.7")


@pytest.fixture
def db(tmp_path):
    from models import database, migrations, open_database
    open_database(f"sqlite:///{tmp_path / 'berth.db'}")
    migrations.migrate()
    eventlog.record("user.add", ALICE, userId="uid-bob", username="bob", email="Bob.Builder@Example.com")
    eventlog.record("app.install", ALICE, appId="a1", location="wiki", domain="corp.example",
                    manifest={"title": "Wiki 100% Free"})
    eventlog.record("app.update", eventlog.SYSTEM, appId="a1", fqdn="wiki.corp.example")
    eventlog.record("domain.add", ALICE, domain="Jürgen-Shop.example", note='say "hi" \\o/')
    eventlog.record("user.login", Actor("uid-bob", "bob", "user", "192.168.1.5"), userId="uid-bob")
    yield
    database.close()


def actions(**query):
    return sorted(e.action for e in eventlog.list_events(1, 100, **query))


def test_actions_list_with_spaces_after_commas(db):
    assert actions(actions="app.install, app.update") == ["app.install", "app.update"]
    assert actions(actions=" user.add ,domain.add,, ") == ["domain.add", "user.add"]
    assert actions(actions="app.install", action=" user.login ") == ["app.install", "user.login"]
    assert actions(actions="app") == []  # whole action names, not prefixes
    assert len(actions(actions=" , ")) == 5  # nothing named: no filter


@pytest.mark.parametrize("term, expected", [
    ("bob", ["user.add", "user.login"]),                   # data username, source username
    ("BOB.builder@example.COM", ["user.add"]),              # email, any case
    ("wiki", ["app.install", "app.update"]),                # location, fqdn
    ("CORP.EXAMPLE", ["app.install", "app.update"]),        # domain
    ("10.0.0.7", ["app.install", "domain.add", "user.add"]),  # source ip
    ("berth", ["app.update"]),                              # the system actor's name
    ("LOGIN", ["user.login"]),                              # the action itself
    ("100%", ["app.install"]),                              # '%' is literal
    ("100% f", ["app.install"]),
    ("_", []),                                              # '_' is literal: no value has one
    ("jürgen", ["domain.add"]),                             # non-ASCII, as stored
    ("JÜRGEN", ["domain.add"]),                             # ... and all upper case
    ('say "hi"', ["domain.add"]),                           # quotes are escaped in the stored JSON
    ("\\o/", ["domain.add"]),
    ("nobody-has-this", []),
])
def test_search_matches_data_source_and_action_case_insensitively(db, term, expected):
    assert actions(search=term) == expected


def test_search_and_actions_combine(db):
    assert actions(search="wiki", actions="app.update, user.add") == ["app.update"]
