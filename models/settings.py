"""Key/value platform settings (JSON values)."""
import peewee

from .db import BaseModel, JSONField


class Setting(BaseModel):
    name = peewee.CharField(primary_key=True, max_length=64)
    value = JSONField(null=True)

    @classmethod
    def read(cls, name, default=None):
        """The value of setting `name`, or `default` when it is not stored."""
        row = cls.get_or_none(cls.name == name)
        return default if row is None else row.value

    @classmethod
    def put(cls, name, value):
        """Create or replace setting `name` (one statement: safe against a concurrent writer)."""
        cls.insert(name=name, value=value).on_conflict(
            conflict_target=[cls.name], update={cls.value: value}).execute()
