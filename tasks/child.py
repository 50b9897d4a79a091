"""The task process: forked by the runner's fork server (tasks.fork_server), which calls `main`
after giving it its own session and the task log as stdout/stderr; or, when there is no fork
server, `python -m tasks.child <task id> <runner pid>` started by the runner itself.

Runs one task body and records its outcome (result, or the error it raised). It dies with the
process that started it (PR_SET_PDEATHSIG; the fork server dies with the runner in turn), so a
killed server leaves no orphan working on.
SIGTERM (stop, timeout) raises TaskStopped inside the body, so `finally:` blocks run; the
runner records why it stopped the task, and sends SIGKILL if the body does not end in time.
Exit status 0 means the outcome is recorded; anything else is reported by the runner.
"""
import ctypes
import json
import os
import signal
import sys
import traceback
from typing import NoReturn

from core import config
from models import open_database
from tasks import context, registry, store
from tasks.context import TaskStopped

PR_SET_PDEATHSIG = 1


def _on_sigterm(signum, frame):
    raise TaskStopped()


def die_with_parent(parent_pid: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the runner's crash recovery still ends the task record
    if os.getppid() != parent_pid:  # the runner died before prctl took effect
        os._exit(1)



def _jsonable(value):
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)


def main(argv: list[str]) -> None:
    task_id, parent_pid = int(argv[1]), int(argv[2])
    die_with_parent(parent_pid)
    signal.signal(signal.SIGTERM, _on_sigterm)
    # The runner made stderr the task log: keep it for failures of this very process.
    early = os.dup(2)
    try:
        run(task_id)
    except BaseException:
        os.write(early, ("task process failed:\n" + traceback.format_exc()).encode("utf-8", "replace"))
        os._exit(1)


def run(task_id: int) -> NoReturn:
    cfg = config.load()
    config.use(cfg)
    open_database(cfg.database_url)
    task = store.get(task_id)
    ctx = context.TaskContext(task)
    ctx.capture_output()
    outcome = {}
    try:
        ctx.log(f"task {task_id} ({task.type}) starting {task.body}")
        result = registry.body(task.body)(ctx, **ctx.args)
        outcome = {"result": _jsonable(result)}
    except TaskStopped:
        ctx.log("stop requested: task process ending")
        ctx.close()
        os._exit(128 + signal.SIGTERM)
    except BaseException as e:  # noqa: B902 - any failure of the body is its outcome
        ctx.log("task failed:\n" + traceback.format_exc().rstrip())
        code = getattr(e, "code", None)
        outcome = {"error": {"message": str(e) or type(e).__name__,
                             "code": code if isinstance(code, str) else type(e).__name__},
                   # a body may say how far it got (e.g. backup stages) on the exception
                   "result": _jsonable(getattr(e, "result", None))}
    # From here on a stop request changes nothing: the outcome is known, record it whole.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    message = outcome["error"]["message"] if "error" in outcome else None if ctx.reported else "Done"
    recorded = store.finish(task_id, message=message, **outcome)
    ctx.log("task finished" + (f" with error: {outcome['error']['message']}" if "error" in outcome
                                else "") + ("" if recorded else " (already ended)"))
    ctx.close()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv)
