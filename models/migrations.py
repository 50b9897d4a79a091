"""Versioned schema migrations, applied in order at start-up.

Each migration is a function taking the database; its number is its position in MIGRATIONS
plus one. Applied numbers are recorded in `schema_version`, so a migration runs once per
database even when several Berth processes start together (the run holds a lock).
"""
import peewee
from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as migrate_schema

from .apps import App
from .backups import Backup
from .credentials import AppPassword, LoginFailure, Token
from .db import database, is_postgres
from .domains import Domain
from .eventlog import Event
from .identity import Group, GroupMember, User
from .notifications import Notification
from .settings import Setting
from .tasks import Schedule, ScheduleRun, Task, TaskRunner


class SchemaVersion(peewee.Model):
    version = peewee.IntegerField(primary_key=True)

    class Meta:
        database = database
        table_name = "schema_version"


def _initial(db):
    db.create_tables([User, Group, GroupMember, Token, AppPassword, LoginFailure, Event, Setting])


def _domains(db):
    db.create_tables([Domain])


def _tasks(db):
    db.create_tables([Task, TaskRunner, Schedule, ScheduleRun])


def _apps(db):
    db.create_tables([App])


def _user_sort_key(db):
    """Users get an indexed listing order (User.sort_key)."""
    if "sort_key" not in {c.name for c in db.get_columns(User._meta.table_name)}:
        migrator = SchemaMigrator.from_database(db)
        migrate_schema(migrator.add_column(User._meta.table_name, "sort_key", User.sort_key),
                       migrator.add_index(User._meta.table_name, ("sort_key",)))
    User.update(sort_key=peewee.Case(None, [(User.username.is_null(), "~" + User.email)], User.username)).execute()


def _backups(db):
    db.create_tables([Backup, Notification])


# Values of tasks.body and schedules.action written before stable names (tasks.registry)
# existed: "module:function" of the flat layout. Frozen here: the old layout is history.
_LEGACY_TASK_NAMES = {
    **{f"app_tasks:{op}": f"app.{op}" for op in
       ("install", "configure", "update", "start", "stop", "restart", "uninstall")},
    "backup_tasks:full_backup": "backup.full",
    "backup_tasks:app_backup": "backup.app",
    "backup_tasks:cleanup": "backup.cleanup",
    "backup_tasks:restore_app": "backup.restore_app",
    "backup_tasks:clone_app": "backup.clone_app",
    "backup_tasks:restore_cloudron": "backup.restore_cloudron",
    "app_health:check_all": "apps.health_check",
    "app_updates:check_all": "apps.autoupdate",
    "app_updates:nothing": "box.autoupdate",
    "backups:scheduled_backup": "backup.scheduled",
    "backups:scheduled_cleanup": "backup.scheduled_cleanup",
}


def _stable_task_names(db):
    """tasks.body and schedules.action hold stable names instead of module paths."""
    for old, new in _LEGACY_TASK_NAMES.items():
        db.execute_sql("UPDATE tasks SET body = %s WHERE body = %s" % (db.param, db.param), (new, old))
        db.execute_sql("UPDATE schedules SET action = %s WHERE action = %s" % (db.param, db.param), (new, old))


MIGRATIONS = [_initial, _domains, _tasks, _apps, _user_sort_key, _backups, _stable_task_names]


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
