"""Key/value platform settings (JSON values)."""
import peewee

from .db import BaseModel, JSONField


class Setting(BaseModel):
    name = peewee.CharField(primary_key=True, max_length=64)
    value = JSONField(null=True)
