"""Versioned schema migrations, applied in order at start-up.

Each migration is a function taking the database; its number is its position in MIGRATIONS
plus one. Applied numbers are recorded in `schema_version`, so a migration runs once per
database even when several Berth processes start together (the run holds a lock).

Migrations never use the live models of models/*.py: each module here freezes the tables as
they were when its steps were written, so changing a model later cannot change an old step.
"""
import peewee

from models.db import database, is_postgres
from models.migrations import (
    v0001_to_v0006,
    v0007_stable_task_names,
    v0008_app_addons,
    v0009_mail,
    v0010_app_mailbox,
    v0011_two_factor,
    v0012_external_directory,
    v0013_usage_history,
    v0014_volumes,
    v0015_deployments,
    v0016_app_configure,
    v0017_webhooks,
)


class SchemaVersion(peewee.Model):
    version = peewee.IntegerField(primary_key=True)

    class Meta:
        database = database
        table_name = "schema_version"


MIGRATIONS = [
    v0001_to_v0006.initial,
    v0001_to_v0006.domains,
    v0001_to_v0006.tasks,
    v0001_to_v0006.apps,
    v0001_to_v0006.user_sort_key,
    v0001_to_v0006.backups,
    v0007_stable_task_names.migrate,
    v0008_app_addons.migrate,
    v0009_mail.migrate,
    v0010_app_mailbox.migrate,
    v0011_two_factor.migrate,
    v0012_external_directory.migrate,
    v0013_usage_history.migrate,
    v0014_volumes.migrate,
    v0015_deployments.migrate,   # reserved (issue 17)
    v0016_app_configure.migrate,
    v0017_webhooks.migrate,   # after v0016_app_configure: databases may have applied that one already
]


def current_version():
    if not SchemaVersion.table_exists():
        return 0
    return SchemaVersion.select(peewee.fn.MAX(SchemaVersion.version)).scalar() or 0


def migrate():
    """Apply pending migrations; returns the list of versions applied."""
    db = database.obj
    applied = []
    with db.atomic("IMMEDIATE") if not is_postgres() else db.atomic():
        if is_postgres():
            db.execute_sql("SELECT pg_advisory_xact_lock(4242001)")
        db.create_tables([SchemaVersion])
        done = current_version()
        for number, step in enumerate(MIGRATIONS, start=1):
            if number > done:
                step(db)
                SchemaVersion.create(version=number)
                applied.append(number)
    return applied
