"""Schema version 0014: volumes and app mounts.

Frozen here as it was written (see models/migrations/__init__.py): models/volumes.py may change
later without changing what this step creates.
"""
import peewee

from models.db import BaseModel, JSONField, utcnow


class App(BaseModel):
    """Only the key the new table refers to; the table itself exists since schema version 4."""
    id = peewee.CharField(primary_key=True, max_length=64)


class Volume(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=64)
    name = peewee.CharField(max_length=64, unique=True)
    host_path = peewee.TextField()
    mount_type = peewee.CharField(max_length=16)
    mount_options = JSONField(default=dict)
    creation_time = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "volumes"


class AppMount(BaseModel):
    app = peewee.ForeignKeyField(App, column_name="app_id", on_delete="CASCADE")
    volume = peewee.ForeignKeyField(Volume, column_name="volume_id", on_delete="RESTRICT")
    read_only = peewee.BooleanField(default=True)

    class Meta:
        table_name = "app_mounts"
        primary_key = peewee.CompositeKey("app", "volume")


def migrate(db):
    """Create the volumes and app_mounts tables."""
    db.create_tables([Volume, AppMount])
