"""Resource usage history behind GET /cloudron/graphs (system_monitor).

One row is one sample of one scope (`system`, or an app id) at `step` resolution: the collector
writes rows of step 60 (a sample per interval; queries average them per minute) and rolls those
older than a day up into rows of step 3600 (one per hour), which are kept for a month.

Rates (bytes per second, CPU percent of the whole machine) are stored ready to plot; `counters`
keeps the cumulative counters the rate was computed from, so the next sample can be computed by
whichever server process claims the next run (no state kept in memory).
"""
import peewee

from .db import BaseModel, JSONField

SYSTEM = "system"
MINUTE = 60
HOUR = 3600


class UsageSample(BaseModel):
    scope = peewee.CharField(max_length=64)
    step = peewee.IntegerField()
    time = peewee.BigIntegerField()          # epoch seconds: the sample's time, or its hour's start
    cpu = peewee.FloatField(null=True)       # percent of all CPUs of the machine
    memory = peewee.BigIntegerField(null=True)   # bytes in use
    disk_read = peewee.FloatField(null=True)     # bytes per second
    disk_write = peewee.FloatField(null=True)
    net_rx = peewee.FloatField(null=True)
    net_tx = peewee.FloatField(null=True)
    disk_used = peewee.BigIntegerField(null=True)  # system only: bytes used on the data dir's filesystem
    counters = JSONField(null=True)

    class Meta:
        table_name = "usage_history"
        indexes = ((("scope", "step", "time"), False), (("step", "time"), False))
