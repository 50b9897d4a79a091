"""Notifications for admins: something went wrong that nobody was watching (a failed backup...)."""
import peewee

from .db import BaseModel, utcnow


class Notification(BaseModel):
    id = peewee.AutoField()
    event_id = peewee.CharField(max_length=64, null=True)
    title = peewee.CharField(max_length=512)
    message = peewee.TextField(default="")   # markdown
    acknowledged = peewee.BooleanField(default=False, index=True)
    creation_time = peewee.DateTimeField(default=utcnow, index=True)

    class Meta:
        table_name = "notifications"
