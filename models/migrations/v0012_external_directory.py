"""Schema version 0012: users and groups from an external LDAP directory (accounts/external_ldap.py).

`source` exists on users and groups since the first schema; "ldap" marks a row the directory sync
owns (its profile is the directory's, its password is checked by binding to the directory). This
step adds the entry's distinguished name, so a sync recognises the same person or group again and
turns a group's `member` DNs into local users. Frozen here as it was written (see
models/migrations/__init__.py): the column definitions are repeated, not taken from models/.
"""
import peewee
from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as migrate_schema

TABLES = ("user", "group")
COLUMN = "external_dn"


def migrate(db):
    """Add the nullable, indexed `external_dn` to the user and group tables (each only when missing)."""
    migrator = SchemaMigrator.from_database(db)
    for table in TABLES:
        if COLUMN not in {c.name for c in db.get_columns(table)}:
            migrate_schema(migrator.add_column(table, COLUMN, peewee.CharField(max_length=1024, null=True)),
                           migrator.add_index(table, (COLUMN,), False))
