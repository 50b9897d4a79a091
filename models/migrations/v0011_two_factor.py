"""Schema version 0011: TOTP two-factor authentication of a user (accounts/totp.py).

Three columns on the user table: the sealed secret (pending until enabled), whether 2FA is on, and the
time step of the last accepted code (a code is usable once). Frozen here as it was written (see
models/migrations/__init__.py): the column definitions are repeated, not taken from models/.
"""
import peewee
from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as migrate_schema

USERS = "user"
COLUMNS = {
    "totp_secret": peewee.TextField(null=True),
    "totp_enabled": peewee.BooleanField(default=False),
    "totp_last_step": peewee.BigIntegerField(null=True),
}


def migrate(db):
    """Add the 2FA columns to the user table (each only when missing, so a partly upgraded database works)."""
    present = {c.name for c in db.get_columns(USERS)}
    migrator = SchemaMigrator.from_database(db)
    steps = [migrator.add_column(USERS, name, field) for name, field in COLUMNS.items() if name not in present]
    if steps:
        migrate_schema(*steps)
