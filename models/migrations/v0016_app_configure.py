"""Schema version 0016: the app settings of the remaining configure routes (issue 15).

Three columns on the app table: the container's CPU weight (`cpu_shares`, 512 by default as on Cloudron),
the reverse proxy settings of its vhost (`reverse_proxy_config`: robotsTxt, csp, hstsPreload) and
a custom host folder for its data (`data_dir`, null = <data>/apps/<id>/data). Frozen here as it was
written (see models/migrations/__init__.py): the column definitions are repeated, not taken from
models/.
"""
import peewee
from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as migrate_schema

APPS = "app"
COLUMNS = {
    "cpu_shares": peewee.IntegerField(default=512),
    "reverse_proxy_config": peewee.TextField(null=True),   # JSON text (models.db.JSONField)
    "data_dir": peewee.TextField(null=True),
}


def migrate(db):
    """Add the columns (each only when missing, so a partly upgraded database works)."""
    present = {c.name for c in db.get_columns(APPS)}
    migrator = SchemaMigrator.from_database(db)
    steps = [migrator.add_column(APPS, name, field) for name, field in COLUMNS.items() if name not in present]
    if steps:
        migrate_schema(*steps)
