"""Schema version 0013: resource usage history for the graphs (models/usage.py, system_monitor).

Frozen here as it was written (see models/migrations/__init__.py): models/usage.py may change
later without changing what this step creates.
"""
import peewee

from models.db import BaseModel, JSONField


class UsageSample(BaseModel):
    scope = peewee.CharField(max_length=64)
    step = peewee.IntegerField()
    time = peewee.BigIntegerField()
    cpu = peewee.FloatField(null=True)
    memory = peewee.BigIntegerField(null=True)
    disk_read = peewee.FloatField(null=True)
    disk_write = peewee.FloatField(null=True)
    net_rx = peewee.FloatField(null=True)
    net_tx = peewee.FloatField(null=True)
    disk_used = peewee.BigIntegerField(null=True)
    counters = JSONField(null=True)

    class Meta:
        table_name = "usage_history"
        indexes = ((("scope", "step", "time"), False), (("step", "time"), False))


def migrate(db):
    """Create the usage_history table with its two indexes (per-scope range reads, roll-up scans)."""
    db.create_tables([UsageSample])
