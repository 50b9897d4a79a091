"""Migrations on a throw-away SQLite file: frozen steps build exactly the schema the flat layout
built, and the live models match what the migrations produce (a column added to a model without
a migration fails here, not in production)."""
import os
import sqlite3

import pytest

LEGACY = os.path.join(os.path.dirname(__file__), "..", "..", "integration", "tasks", "legacy_f796de7.sql")
SCHEMA = "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"


@pytest.fixture
def migrated(tmp_path):
    from models import database, migrations, open_database
    path = tmp_path / "berth.db"
    open_database(f"sqlite:///{path}")
    migrations.migrate()
    yield path
    database.close()


def test_versions_one_to_six_build_the_schema_of_the_flat_layout(tmp_path):
    from models import database, migrations, open_database
    path = tmp_path / "six.db"
    db = open_database(f"sqlite:///{path}")
    db.create_tables([migrations.SchemaVersion])
    for step in migrations.MIGRATIONS[:7]:      # 7 renames stored names only; later ones add tables
        step(db)
    database.close()
    legacy = sqlite3.connect(":memory:")
    with open(LEGACY) as f:
        legacy.executescript(f.read())
    new = sqlite3.connect(path)
    assert set(new.execute(SCHEMA)) == set(legacy.execute(SCHEMA))


def test_live_models_match_the_migrated_schema(migrated):
    import models.addons
    import models.apps
    import models.backups
    import models.notifications
    import models.tasks
    from models import AppPassword, Domain, Event, Group, GroupMember, LoginFailure, Setting, Token, User
    db = sqlite3.connect(migrated)
    for model in (User, Group, GroupMember, Token, AppPassword, LoginFailure, Event, Setting, Domain,
                  models.tasks.Task, models.tasks.TaskRunner, models.tasks.Schedule, models.tasks.ScheduleRun,
                  models.apps.App, models.backups.Backup, models.notifications.Notification,
                  models.addons.AddonService, models.addons.AppAddon):
        table = model._meta.table_name
        columns = {row[1] for row in db.execute(f'PRAGMA table_info("{table}")')}
        fields = {f.column_name for f in model._meta.sorted_fields}
        assert fields <= columns, (table, fields - columns)


def test_migrating_twice_applies_nothing(migrated):
    from models import migrations
    assert migrations.migrate() == []
    assert migrations.current_version() == len(migrations.MIGRATIONS)
