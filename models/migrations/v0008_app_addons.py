"""Schema version 8: addon services and the credentials each app's addons gave it (frozen)."""
import peewee

from models.db import BaseModel, JSONField, utcnow


class AddonService(BaseModel):
    name = peewee.CharField(primary_key=True, max_length=80)
    root_password = peewee.CharField(max_length=128, default="")
    memory_limit = peewee.BigIntegerField(default=0)
    enabled = peewee.BooleanField(default=True)
    creation_time = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "addon_service"


class AppAddon(BaseModel):
    app_id = peewee.CharField(max_length=64)
    addon = peewee.CharField(max_length=32)
    env = JSONField(default=dict)
    creation_time = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "app_addon"
        primary_key = peewee.CompositeKey("app_id", "addon")


def migrate(db):
    db.create_tables([AddonService, AppAddon])
