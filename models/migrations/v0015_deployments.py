"""Schema version 15: deployments of apps built from source or images (issue 17).

Frozen here as it was written (see models/migrations/__init__.py): models/deployments.py may change
later without changing what this step creates.
"""
import peewee

from models.db import BaseModel, JSONField, utcnow


class App(BaseModel):
    """Only the key the new table refers to; the table itself exists since schema version 4."""
    id = peewee.CharField(primary_key=True, max_length=64)


class Deployment(BaseModel):
    id = peewee.AutoField()
    app = peewee.ForeignKeyField(App, column_name="app_id", on_delete="CASCADE")
    number = peewee.IntegerField()
    source = JSONField(default=dict)
    commit = peewee.CharField(max_length=64, null=True)
    image = peewee.CharField(max_length=512, null=True)
    manifest = JSONField(null=True)
    manifest_version = peewee.CharField(max_length=64, null=True)
    state = peewee.CharField(max_length=16, index=True)
    reason = peewee.TextField(null=True)
    task_id = peewee.IntegerField(null=True)
    rollback_of = peewee.IntegerField(null=True)
    source_actor = JSONField(null=True)
    creation_time = peewee.DateTimeField(default=utcnow)
    finish_time = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "deployments"
        indexes = ((("app", "number"), True),)


def migrate(db):
    """Create the deployments table."""
    db.create_tables([Deployment])
