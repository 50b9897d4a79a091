"""Schema version 17: git sources of apps and their webhook deliveries.

Frozen here as it was written (see models/migrations/__init__.py): models/webhooks.py may change
later without changing what this step creates.
"""
import peewee

from models.db import BaseModel, utcnow


class App(BaseModel):
    """Only the key the new tables refer to; the table itself exists since schema version 4."""
    id = peewee.CharField(primary_key=True, max_length=64)

    class Meta:
        table_name = "app"


class GitSource(BaseModel):
    app = peewee.ForeignKeyField(App, column_name="app_id", primary_key=True, on_delete="CASCADE")
    url = peewee.TextField()
    branch = peewee.CharField(max_length=255)
    token = peewee.TextField(null=True)
    deploy_key = peewee.TextField(null=True)
    webhook_secret = peewee.TextField()
    creation_time = peewee.DateTimeField(default=utcnow)
    update_time = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "git_sources"


class WebhookDelivery(BaseModel):
    id = peewee.AutoField()
    app = peewee.ForeignKeyField(App, column_name="app_id", on_delete="CASCADE")
    delivery_id = peewee.CharField(max_length=128)
    body_sha256 = peewee.CharField(max_length=64)
    provider = peewee.CharField(max_length=16)
    commit = peewee.CharField(max_length=64, null=True)
    task_id = peewee.IntegerField(null=True)
    creation_time = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "webhook_deliveries"
        indexes = ((("app", "delivery_id"), True), (("app", "body_sha256"), True))


def migrate(db):
    """Create the two tables."""
    db.create_tables([GitSource, WebhookDelivery])
