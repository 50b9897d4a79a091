"""Addon state: the database services Berth runs and the credentials each app was given."""
import peewee

from .db import BaseModel, JSONField, utcnow


class AddonService(BaseModel):
    """One service container Berth keeps running: "postgresql", "mysql" or "redis-<app id>"."""
    name = peewee.CharField(primary_key=True, max_length=80)
    root_password = peewee.CharField(max_length=128, default="")   # secret: never logged or shown
    memory_limit = peewee.BigIntegerField(default=0)               # bytes; 0 = the service's default
    enabled = peewee.BooleanField(default=True)                    # False: stopped on purpose, not healed
    creation_time = peewee.DateTimeField(default=utcnow)


class AppAddon(BaseModel):
    """The environment an addon gave an app (CLOUDRON_* variables, with the password): provisioning
    again returns the same, so the app keeps working across restarts and updates."""
    app_id = peewee.CharField(max_length=64)
    addon = peewee.CharField(max_length=32)
    env = JSONField(default=dict)
    creation_time = peewee.DateTimeField(default=utcnow)

    class Meta:
        primary_key = peewee.CompositeKey("app_id", "addon")
