"""The task engine: every long operation (install, backup, restore, cleanup, renewal, update)
runs as a task that a client follows by id, stops, and can trust the outcome of after a crash.

Design (why it is built this way):
- The `tasks` table is the queue. `start()` inserts a pending row from any process (a request
  handler, a schedule, a script); nothing else is needed for the task to run.
- Each server worker process runs a Runner thread (tasks.runner) that claims pending rows in one
  exclusive transaction (SQLite write lock / PostgreSQL advisory lock) applying the concurrency
  rules for all processes sharing the database: tasks sharing a lock key never run together
  (work on one app: key `app:<id>`; backups: key `backup`), others run in parallel up to
  runner.MAX_PARALLEL; waiting tasks stay `pending`, oldest first.
- A claimed task runs in its own process (tasks.child) in its own process group, so stop works
  on a body stuck in a blocking call (SIGTERM, then SIGKILL after a grace period) and a crashing
  body never takes the server down. Stop requests go through the row (`stop_reason`), so
  `POST /tasks/{id}/stop` works whichever worker or Berth process answers it.
- Outcomes: the body's result or error is written by the task process itself; `stopped`,
  `timeout` and `crashed` are written by the runner when the process ends without one. Runners
  hold a lease row (task_runners); at start and every few seconds each runner ends as crashed
  the active tasks of runners that are gone (lease lapsed, or process gone from this host), so
  a task is never left active forever.
- Logs: one file per task (tasks.logs); GET .../logs reads it, .../logstream follows it through
  the async log_streams package (served as Server-Sent Events by web.event_stream).
- Schedules (tasks.schedules): APScheduler cron triggers with seconds, stored in the database
  and fired exactly once per fire time across all processes by claiming (schedule, fire time).

Bodies are functions `body(task, **args)` named by a stable name of tasks.registry; see tasks.context for what
`task` offers. Only domain code starts tasks: the API never accepts a body name.
"""
from collections.abc import Iterable

from log_streams import LineSource
from models.tasks import Task
from tasks import logs, registry, store

DEFAULT_TIMEOUT = 24 * 3600     # seconds: a wedged task still ends (as `timeout`) eventually
TYPES = ("app", "backup", "update", "renewcerts", "prepareDashboardDomain", "cleanBackups",
         "syncExternalLdap", "setupDnsAndCert", "changeMailLocation", "syncDnsRecords")

_runner = None  # the Runner of this process, when it serves the API (tasks.lifecycle)


def start(type: str, body: str, args: dict | None = None, *, app_id: str | None = None,
          locks: Iterable[str] = (), timeout: int | None = DEFAULT_TIMEOUT) -> int:
    """Queue a task and return its id. `body` is a stable name of tasks.registry, called in the task process
    as body(task, **args). Tasks for the same `app_id`, or sharing any of `locks`, run one at a
    time in creation order; `backup` tasks always hold the `backup` lock."""
    if type not in TYPES:
        raise ValueError(f"unknown task type {type!r}")
    try:
        registry.body(body)
    except (ImportError, LookupError) as e:
        raise ValueError(str(e)) from None
    keys = set(locks)
    if app_id:
        keys.add(f"app:{app_id}")
    if type == "backup":
        keys.add("backup")
    task = store.create(type, body, args, keys, timeout)
    if _runner is not None:
        _runner.wake()
    return task.id


def get(task_id: int) -> Task:
    return store.get(task_id)


def list_tasks(page: int = 1, per_page: int = 25, type: str | None = None) -> list[Task]:
    return store.page(page, per_page, type)


def stop(task_id: int) -> None:
    store.request_stop(task_id)
    if _runner is not None:
        _runner.wake()


def read_log(task_id: int, lines: int = 10, fmt: str = "json") -> str:
    return logs.read(task_id, lines, fmt)


async def follow_log(task_id: int, lines: int | None = 10, after: int | None = None) -> LineSource:
    return await logs.follow(task_id, lines, after)
