"""Tasks (long operations run in their own process), the runners that execute them, and the
recurring schedules that start work. See the `tasks` package for how these rows are used."""
import peewee

from .db import BaseModel, JSONField, utcnow


class Task(BaseModel):
    """One long operation. The table is also the queue: any process may insert a pending row,
    a runner claims it (pending -> active) and runs `body` in a child process."""
    id = peewee.AutoField()
    type = peewee.CharField(max_length=32, index=True)      # Cloudron task type: app, backup, ...
    body = peewee.CharField(max_length=200)                  # stable name (tasks.registry) run by the task process
    args = JSONField(default=dict)                           # keyword arguments of the body
    locks = peewee.CharField(max_length=400, default="")     # comma-separated; equal keys never run together
    timeout = peewee.IntegerField(null=True)                 # seconds; None = no limit
    percent = peewee.IntegerField(default=0)
    message = peewee.TextField(default="")
    error = JSONField(null=True)                             # {message, code}
    result = JSONField(null=True)
    success = peewee.BooleanField(default=False)
    pending = peewee.BooleanField(default=True, index=True)
    active = peewee.BooleanField(default=False, index=True)
    creation_time = peewee.DateTimeField(default=utcnow)
    ts = peewee.DateTimeField(default=utcnow)                # last update
    started_at = peewee.DateTimeField(null=True)
    runner = peewee.CharField(max_length=64, null=True)      # TaskRunner.id of the claiming runner
    pid = peewee.IntegerField(null=True)                     # task process id (on the runner's host)
    stop_reason = peewee.CharField(max_length=16, null=True)  # 'stopped' or 'timeout' once requested

    class Meta:
        table_name = "tasks"


class TaskRunner(BaseModel):
    """A live runner (one per server worker process) and its lease. Tasks owned by a runner whose
    lease lapsed, or whose process is gone from this host, are crashed."""
    id = peewee.CharField(primary_key=True, max_length=64)
    host = peewee.CharField(max_length=255)
    pid = peewee.IntegerField()
    pid_start = peewee.CharField(max_length=32, default="")  # /proc start time: tells pid reuse apart
    heartbeat = peewee.DoubleField()                          # epoch seconds

    class Meta:
        table_name = "task_runners"


class Schedule(BaseModel):
    """A recurring job: cron pattern with seconds, and the "module:function" it calls."""
    name = peewee.CharField(primary_key=True, max_length=64)
    pattern = peewee.CharField(max_length=128)               # 6-field cron, or 'never'
    action = peewee.CharField(max_length=200)
    args = JSONField(default=dict)
    updated = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "schedules"


class ScheduleRun(BaseModel):
    """Claim of one firing of a schedule: the primary key makes exactly one process win it."""
    schedule = peewee.CharField(max_length=64)
    fire_time = peewee.BigIntegerField()                     # epoch milliseconds of the planned fire time
    runner = peewee.CharField(max_length=64)
    claimed = peewee.DateTimeField(default=utcnow, index=True)

    class Meta:
        table_name = "schedule_runs"
        primary_key = peewee.CompositeKey("schedule", "fire_time")
