"""The audit trail: one row per change, who did it and from where."""
import peewee

from .db import BaseModel, JSONField, utcnow


class Event(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=64)
    action = peewee.CharField(max_length=64, index=True)
    source = JSONField(default=dict)  # {userId, username, ip}
    data = JSONField(default=dict)
    creation_time = peewee.DateTimeField(default=utcnow, index=True)
