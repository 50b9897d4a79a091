"""Recurring work: cron patterns with a seconds field (the Cloudron / node-cron format of
`settings/*_autoupdate_pattern`: `sec min hour day month weekday`; `never` disables), stored in
the `schedules` table so they survive restarts, driven by APScheduler in every server worker.

Exactly once: every worker of every Berth process sharing the database has the same jobs and
fires them at the same planned times. Before calling the action, a worker inserts the row
(schedule, planned fire time) into `schedule_runs`; its primary key lets exactly one insert
succeed, and only that worker runs the action. The planned time comes from the trigger (not the
clock), so it is identical in every process.

An action is a stable name of tasks.registry; its function is called as action(fire_time=<epoch seconds>, **args)
in the server process. It should be quick: typically it starts a task (tasks.start).
"""
import datetime
import logging
import sys
import threading
import traceback
import zoneinfo

import peewee
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from core.errors import BadRequest
from models import Setting, database, utcnow
from models.tasks import Schedule, ScheduleRun
from tasks import registry

log = logging.getLogger("berth.schedules")

NEVER = "never"
SYNC_SECS = 2.0             # how soon a change made by another process is picked up
MISFIRE_GRACE_SECS = 60
KEEP_RUNS = datetime.timedelta(days=7)
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


# ---------------------------------------------------------------------------------------------
# Patterns

def _weekday(token):
    token = token.strip().lower()
    if token[:3] in _DAYS and not token.isdigit():
        return _DAYS.index(token[:3])
    value = int(token)
    if not 0 <= value <= 7:
        raise ValueError(f"weekday {token!r} is out of range 0-7")
    return value


def _weekdays(field):
    """Cron weekday field (0 or 7 = Sunday) -> APScheduler day names (its numbers start Monday)."""
    if field in ("*", "?"):
        return "*"
    days = set()
    for part in field.split(","):
        span, _, step = part.partition("/")
        step = int(step) if step else 1
        if step < 1:
            raise ValueError("step must be at least 1")
        if span in ("*", "?"):
            low, high = 0, 6
        elif "-" in span:
            low, high = (_weekday(x) for x in span.split("-", 1))
        else:
            low = _weekday(span)
            high = 7 if step > 1 else low
        if low > high:
            raise ValueError(f"weekday range {span!r} is backwards")
        days.update(d % 7 for d in range(low, high + 1, step))
    return ",".join(_DAYS[d] for d in sorted(days))


def trigger(pattern: str | None, timezone: datetime.tzinfo | None = None) -> CronTrigger | None:
    """CronTrigger for a 6-field pattern (5 fields: seconds = 0), None for 'never'.
    Raises BadRequest naming the `pattern` field."""
    text = (pattern or "").strip()
    if text.lower() == NEVER:
        return None
    fields = text.split()
    if len(fields) == 5:
        fields.insert(0, "0")
    if len(fields) != 6:
        raise BadRequest("must be 'never' or a cron pattern of 6 fields: second minute hour day month "
                         "weekday", field="pattern")
    second, minute, hour, day, month, weekday = fields
    try:
        return CronTrigger(second=second, minute=minute, hour=hour, day=day.replace("?", "*"),
                           month=month, day_of_week=_weekdays(weekday),
                           timezone=timezone or datetime.timezone.utc)
    except ValueError as e:
        raise BadRequest(f"invalid cron pattern {text!r}: {e}", field="pattern") from None


def validate(pattern: str) -> str:
    trigger(pattern)
    return pattern.strip()


def timezone() -> datetime.tzinfo:
    """The Cloudron's time zone (setting `time_zone`), UTC when unset or unknown."""
    try:
        row = Setting.get_or_none(Setting.name == "time_zone")
        return zoneinfo.ZoneInfo(row.value) if row and row.value else datetime.timezone.utc
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        return datetime.timezone.utc


# ---------------------------------------------------------------------------------------------
# Stored schedules (callable from any process)

def _check_action(action):
    try:
        registry.action(action)
    except (ImportError, LookupError, ValueError) as e:
        raise ValueError(f"schedule action {action!r}: {e}") from None


def save(name: str, pattern: str, action: str, args: dict | None = None) -> None:
    """Create or change schedule `name`. 'never' keeps it stored but firing nothing."""
    pattern = validate(pattern)
    _check_action(action)
    with database.atomic():
        updated = Schedule.update(pattern=pattern, action=action, args=args or {}, updated=utcnow()).where(
            Schedule.name == name).execute()
        if not updated:
            Schedule.create(name=name, pattern=pattern, action=action, args=args or {})
    changed()


def ensure(name: str, pattern: str, action: str, args: dict | None = None) -> None:
    """Create schedule `name` with this default unless it exists (a changed pattern is kept)."""
    validate(pattern)
    _check_action(action)
    try:
        with database.atomic():
            Schedule.create(name=name, pattern=pattern.strip(), action=action, args=args or {})
    except peewee.IntegrityError:
        return
    changed()


def get(name: str) -> Schedule | None:
    return Schedule.get_or_none(Schedule.name == name)


def remove(name: str) -> None:
    Schedule.delete().where(Schedule.name == name).execute()
    changed()


def claim(name: str, fire_ms: int, runner_id: str) -> bool:
    """True for the one process that gets to run this firing."""
    try:
        with database.atomic():
            ScheduleRun.create(schedule=name, fire_time=fire_ms, runner=runner_id)
        return True
    except peewee.IntegrityError:
        return False


# ---------------------------------------------------------------------------------------------
# The scheduler of a server process

class ClaimingExecutor(ThreadPoolExecutor):
    """Runs a job only for the planned fire times this process claims (see module docstring).
    APScheduler's documented extension point for executors is `_do_submit_job`."""

    def __init__(self, runner_id: str, max_workers: int = 4) -> None:
        super().__init__(max_workers)
        self.runner_id = runner_id

    def _do_submit_job(self, job, run_times):
        def done(f):
            if f.exception() is not None:
                self._run_job_error(job.id, f.exception(), f.exception().__traceback__)
            else:
                self._run_job_success(job.id, f.result())
        self._pool.submit(self._run, job, run_times).add_done_callback(done)

    def _run(self, job, run_times):
        events = []
        alias = job._jobstore_alias
        for run_time in run_times:
            late = (datetime.datetime.now(datetime.timezone.utc) - run_time).total_seconds()
            if job.misfire_grace_time is not None and late > job.misfire_grace_time:
                events.append(JobExecutionEvent(EVENT_JOB_MISSED, job.id, alias, run_time))
                continue
            if not claim(job.args[0], int(run_time.timestamp() * 1000), self.runner_id):
                continue
            try:
                retval = job.func(*job.args, fire_time=run_time.timestamp(), **job.kwargs)
            except Exception:
                exc, tb = sys.exc_info()[1:]
                log.exception("schedule %s failed", job.id)
                events.append(JobExecutionEvent(EVENT_JOB_ERROR, job.id, alias, run_time, exception=exc,
                                                traceback="".join(traceback.format_tb(tb))))
            else:
                events.append(JobExecutionEvent(EVENT_JOB_EXECUTED, job.id, alias, run_time, retval=retval))
        return events


def _fire(name, fire_time=None):
    row = get(name)
    if row is None or row.pattern.lower() == NEVER:
        return None
    return registry.action(row.action)(fire_time=fire_time, **(row.args or {}))


_scheduler = None


def changed() -> None:
    if _scheduler is not None:
        _scheduler.sync_soon()


class Scheduler:
    def __init__(self, runner_id: str) -> None:
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(2), "claimed": ClaimingExecutor(runner_id)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE_SECS},
            timezone=datetime.timezone.utc)
        self._loaded = {}  # schedule name -> (pattern, timezone name) of its job
        self._lock = threading.Lock()

    def start(self) -> None:
        global _scheduler
        self.scheduler.start()
        try:
            self.sync()
        except Exception:
            log.exception("loading schedules failed; retrying every %ss", SYNC_SECS)
        self.scheduler.add_job(self.sync, "interval", seconds=SYNC_SECS, id="_sync")
        self.scheduler.add_job(prune, "interval", hours=1, id="_prune")
        _scheduler = self

    def shutdown(self) -> None:
        global _scheduler
        if _scheduler is self:
            _scheduler = None
        self.scheduler.shutdown(wait=False)

    def sync_soon(self) -> None:
        job = self.scheduler.get_job("_sync")
        if job is not None:
            job.modify(next_run_time=datetime.datetime.now(datetime.timezone.utc))

    def sync(self) -> None:
        """Make this process's jobs match the schedules table."""
        with self._lock:
            tz = timezone()
            wanted = {}
            for row in Schedule.select():
                wanted[row.name] = (row.pattern, str(tz))
            for name in list(self._loaded):
                if wanted.get(name) != self._loaded[name]:
                    if self.scheduler.get_job(_job_id(name)):
                        self.scheduler.remove_job(_job_id(name))
                    del self._loaded[name]
            for name, key in wanted.items():
                if name in self._loaded:
                    continue
                try:
                    cron = trigger(key[0], tz)
                    if cron is not None:
                        self.scheduler.add_job(_fire, cron, args=[name], id=_job_id(name),
                                               executor="claimed", replace_existing=True)
                except Exception as e:  # one bad row must not stop the others (or the server)
                    log.error("schedule %s not loaded: %s", name, getattr(e, "message", e))
                self._loaded[name] = key


def _job_id(name):
    return "schedule:" + name  # apart from the scheduler's own jobs (_sync, _prune)


def prune() -> None:
    ScheduleRun.delete().where(ScheduleRun.claimed < utcnow() - KEEP_RUNS).execute()

