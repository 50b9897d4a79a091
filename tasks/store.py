"""The task table as a queue shared by every Berth process: create, claim under the concurrency
rules, progress, outcome, stop requests, and the leases that let a crash be noticed."""
import contextlib
import os
import socket
import time
from collections.abc import Iterable, Iterator

from core import processes
from core.errors import Conflict, NotFound
from models import database, utcnow
from models.db import is_postgres
from models.tasks import Task, TaskRunner

CLAIM_LOCK = 4242003        # pg advisory lock id serialising claims across processes
LEASE_SECS = 30.0           # a runner silent this long is dead (its tasks are crashed)
HOST = socket.gethostname()

STOPPED = "stopped"
TIMEOUT = "timeout"
CRASHED = "crashed"


@contextlib.contextmanager
def exclusive() -> Iterator[None]:
    """A write transaction no other claimer (in any process) runs alongside."""
    db = database.obj
    if is_postgres():
        with db.atomic():
            db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (CLAIM_LOCK,))
            yield
    else:
        with db.atomic("IMMEDIATE"):  # takes SQLite's write lock at BEGIN
            yield


def create(type: str, body: str, args: dict | None, locks: Iterable[str], timeout: int | None) -> Task:
    return Task.create(type=type, body=body, args=args or {}, locks=",".join(sorted(set(locks))),
                       timeout=timeout, message="Queued")


def get(task_id: int) -> Task:
    task = Task.get_or_none(Task.id == task_id)
    if task is None:
        raise NotFound(f"No such task: {task_id}")
    return task


def page(page: int, per_page: int, type: str | None = None) -> list[Task]:
    query = Task.select().order_by(Task.id.desc())
    if type:
        query = query.where(Task.type == type)
    return list(query.paginate(page, per_page))


def is_finished(task_id: int) -> bool:
    row = Task.select(Task.pending, Task.active).where(Task.id == task_id).first()
    return row is None or not (row.pending or row.active)


def _keys(task):
    return {k for k in (task.locks or "").split(",") if k}


def claim(runner_id: str, limit: int) -> list[Task]:
    """Move pending tasks that may start now to active, owned by `runner_id`. Oldest first; a
    task whose lock keys are busy waits, and so does every later task sharing a key with it."""
    pending = Task.select(Task.id).where(Task.pending == True)  # noqa: E712
    if not pending.exists():  # the usual case: a plain read, no write lock taken
        return []
    now = utcnow()
    with exclusive():
        if not pending.exists():
            return []
        active = list(Task.select(Task.locks).where(Task.active == True))  # noqa: E712
        room = limit - len(active)
        busy = set().union(*(_keys(t) for t in active)) if active else set()
        claimed = []
        for task in Task.select().where(Task.pending == True).order_by(Task.id):  # noqa: E712
            if room <= 0:
                break
            keys = _keys(task)
            if keys & busy:
                busy |= keys  # keep order: later tasks on these keys wait behind this one
                continue
            busy |= keys
            claimed.append(task)
            room -= 1
        if claimed:
            Task.update(pending=False, active=True, runner=runner_id, started_at=now, ts=now,
                        message="Starting").where(Task.id.in_([t.id for t in claimed])).execute()
    return [Task.get_by_id(t.id) for t in claimed]


def set_pid(task_id: int, pid: int) -> None:
    Task.update(pid=pid, ts=utcnow()).where(Task.id == task_id).execute()


def progress(task_id: int, percent: float | None = None, message: object = None) -> None:
    fields = {Task.ts: utcnow()}
    if percent is not None:
        fields[Task.percent] = max(0, min(100, int(percent)))
    if message is not None:
        fields[Task.message] = str(message)
    Task.update(fields).where(Task.id == task_id, Task.active == True).execute()  # noqa: E712


def finish(task_id: int, result: object = None, error: dict | None = None, message: str | None = None) -> bool:
    """Record the outcome of an active task. False when it had already ended (the first outcome
    recorded wins: a task never ends twice)."""
    fields = {Task.active: False, Task.pending: False, Task.percent: 100, Task.result: result,
              Task.error: error, Task.success: error is None, Task.ts: utcnow()}
    if message is not None:
        fields[Task.message] = message
    return Task.update(fields).where(Task.id == task_id, Task.active == True).execute() > 0  # noqa: E712


def abnormal_error(reason: str, task: Task | None = None, detail: str | None = None) -> dict:
    if reason == STOPPED:
        return {"message": "Task was stopped", "code": STOPPED}
    if reason == TIMEOUT:
        limit = f" of {task.timeout} seconds" if task is not None and task.timeout else ""
        return {"message": f"Task exceeded its time limit{limit}", "code": TIMEOUT}
    return {"message": detail or "Task process crashed", "code": CRASHED}


def request_stop(task_id: int) -> Task:
    """Ask for a task to stop: a pending one ends now, an active one is signalled by the runner
    that owns it (whichever process that is). 409 when it has already finished."""
    task = get(task_id)
    if task.pending:
        ended = Task.update(pending=False, active=False, percent=100, success=False, ts=utcnow(),
                            error=abnormal_error(STOPPED), message="Stopped").where(
            Task.id == task_id, Task.pending == True).execute()  # noqa: E712
        if ended:
            return task
        task = get(task_id)  # claimed meanwhile: stop it as an active task
    if not task.active:
        raise Conflict(f"Task {task_id} is not active: it has already finished")
    Task.update(stop_reason=STOPPED, ts=utcnow()).where(
        Task.id == task_id, Task.active == True, Task.stop_reason.is_null()).execute()  # noqa: E712
    return task


def set_stop_reason(task_id: int, reason: str) -> None:
    Task.update(stop_reason=reason).where(Task.id == task_id, Task.stop_reason.is_null()).execute()


def stop_requests(task_ids: Iterable[int]) -> dict[int, str]:
    """{task id: reason} for those of `task_ids` asked to stop."""
    if not task_ids:
        return {}
    rows = Task.select(Task.id, Task.stop_reason).where(
        Task.id.in_(list(task_ids)), Task.stop_reason.is_null(False))
    return {row.id: row.stop_reason for row in rows}


# ---------------------------------------------------------------------------------------------
# Runner leases and crash recovery

def _alive_here(pid, start):
    """Is the runner process still there (and not a newer process that got the same pid)?"""
    return processes.alive(pid) and (not start or processes.start_time(pid) in ("", start))


def register_runner(runner_id: str) -> None:
    pid = os.getpid()
    TaskRunner.insert(id=runner_id, host=HOST, pid=pid, pid_start=processes.start_time(pid),
                      heartbeat=time.time()).on_conflict_ignore().execute()


def heartbeat(runner_id: str) -> None:
    if not TaskRunner.update(heartbeat=time.time()).where(TaskRunner.id == runner_id).execute():
        register_runner(runner_id)  # someone took us for dead and removed the row: come back


def unregister_runner(runner_id: str) -> None:
    TaskRunner.delete().where(TaskRunner.id == runner_id).execute()


def recover(own_runner_id: str) -> list[tuple[Task, dict]]:
    """End, as crashed (or stopped/timeout when that was asked), the active tasks of runners
    that are gone: lease lapsed, or their process no longer exists on this host. Returns the
    (task, error) pairs ended."""
    now = time.time()
    alive, dead = set(), set()
    for runner in TaskRunner.select():
        if runner.id == own_runner_id:
            alive.add(runner.id)
        elif now - runner.heartbeat > LEASE_SECS or (
                runner.host == HOST and not _alive_here(runner.pid, runner.pid_start)):
            dead.add(runner.id)
        else:
            alive.add(runner.id)
    orphans = Task.select().where(Task.active == True)  # noqa: E712
    if alive:
        orphans = orphans.where(Task.runner.is_null() | Task.runner.not_in(list(alive)))
    ended = []
    for task in orphans:
        error = abnormal_error(task.stop_reason or CRASHED, task,
                               "Berth stopped while the task was running")
        if finish(task.id, error=error, message=error["message"]):
            ended.append((task, error))
    if dead:
        TaskRunner.delete().where(TaskRunner.id.in_(list(dead))).execute()
    return ended
