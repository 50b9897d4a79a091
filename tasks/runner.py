"""The runner: one per server worker process. Claims pending tasks from the table, runs each in
its own process (tasks.child), stops them on request or at their time limit (SIGTERM to the
task's process group, SIGKILL after a grace period), records how they ended when the body could
not, and ends as crashed the tasks of runners that died.

It is one thread that ticks every TICK_SECS while tasks run, IDLE_TICK_SECS otherwise, and at
once when woken by a `tasks.start` or `tasks.stop` in its own process. Task processes are forked
by the runner's fork server (tasks.fork_server: warm, imports done), which the thread starts and
is the parent of, so PR_SET_PDEATHSIG ties the server, and through it every task process, to the
thread. Without a fork server (it could not start) the thread spawns `python -m tasks.child` itself.

The fork server is started on demand, when the runner claims a task and has none (at start-up,
after the server's idle exit, or after it died), not when the runner starts: it is a second
interpreter of ~70 MB with every body module imported, and a Berth that runs no task (most of
the time) should not carry it (issue 18, idle memory; bench/api.py). That first task pays the
server's start-up as a spawned process would (about half a second, bench/api.py); the ones after
it, for as long as tasks keep coming (fork_server.IDLE_EXIT_SECS), are forked warm.
"""
import dataclasses
import logging
import os
import signal
import sys
import threading
import time
import uuid

from core import commands, config
from tasks import logs, store
from tasks.fork_server import ForkServer, ForkServerGone

log = logging.getLogger("berth.tasks")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_PARALLEL = 5            # tasks running at once across all processes sharing the database
TICK_SECS = 0.2             # with tasks running: how soon a stop request or an exit is seen
IDLE_TICK_SECS = 0.5        # with none: how soon a task queued by another process starts
HEARTBEAT_SECS = 5.0
RECOVER_SECS = 5.0
STOP_GRACE_SECS = 5.0       # SIGTERM -> SIGKILL
SERVER_RETRY_SECS = 60.0    # after a fork server failed to start, tasks are spawned for this long


class Spawned:
    """A task process the runner started itself (`python -m tasks.child`)."""

    def __init__(self, popen: commands.Popen) -> None:
        self.popen, self.pid = popen, popen.pid

    def exited(self) -> bool:
        return _exited(self.pid)

    def signal(self, sig: int) -> None:
        _killpg(self.pid, sig)

    def wait(self) -> int:
        # The process is a zombie, so its pid (= process group id) cannot be reused yet: whatever
        # it started and left behind goes down with it.
        _killpg(self.pid, signal.SIGKILL)
        return self.popen.wait()


class Forked:
    """A task process forked by the fork server, which reaps it (and kills its group first)."""

    def __init__(self, server: ForkServer, pid: int) -> None:
        self.server, self.pid = server, pid

    def exited(self) -> bool:
        return self.server.exited(self.pid)

    def signal(self, sig: int) -> None:
        self.server.signal(self.pid, sig)

    def wait(self) -> int:
        return self.server.wait(self.pid)


@dataclasses.dataclass
class Child:
    task_id: int
    proc: Spawned | Forked
    deadline: float = None          # monotonic; None = no time limit
    reason: str = None              # why we signalled it: store.STOPPED / store.TIMEOUT
    term_at: float = None
    killed: bool = False


class Runner:
    def __init__(self, limit: int = MAX_PARALLEL) -> None:
        self.id = uuid.uuid4().hex
        self.limit = limit
        self.children = {}
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = None
        self._next_heartbeat = 0.0
        self._next_recover = 0.0
        self._server = None             # the ForkServer, started by the thread when a task needs it
        self._server_retry_at = 0.0     # monotonic: no new start attempt before (one failed)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        store.register_runner(self.id)
        self._recover()  # before claiming anything: tasks of a dead server end as crashed
        self._thread = threading.Thread(target=self._loop, name="task-runner", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = STOP_GRACE_SECS + 3) -> None:
        """Stop the running tasks (they end as crashed: the server is going away) and the thread."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self):
        while not self._stopping.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("task runner tick failed")
            self._wake.wait(TICK_SECS if self.children else IDLE_TICK_SECS)
            self._wake.clear()
        try:
            self._shutdown()
        except Exception:
            log.exception("task runner shutdown failed")

    def tick(self) -> None:
        now = time.monotonic()
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + HEARTBEAT_SECS
            store.heartbeat(self.id)
        if now >= self._next_recover:
            self._recover()
        self._watch_children()
        self._reap_idle_server()
        if len(self.children) < self.limit:
            for task in store.claim(self.id, self.limit):
                self._spawn(task)

    def _recover(self):
        self._next_recover = time.monotonic() + RECOVER_SECS
        for task, error in store.recover(self.id):
            log.warning("task %s ended: %s", task.id, error["message"])
            _append_log(task.id, f"task ended: {error['message']}")

    # -- task processes ----------------------------------------------------------------------

    def _child_env(self):
        cfg = config.get()
        return dict(os.environ, BERTH_DATA_DIR=cfg.data_dir, BERTH_DATABASE_URL=cfg.database_url)

    def _start_fork_server(self):
        """Called from the runner thread only: PR_SET_PDEATHSIG names the thread, not the process."""
        try:
            self._server = ForkServer(self._child_env())
        except OSError:
            log.exception("could not start the task fork server: task processes are spawned for %g s",
                          SERVER_RETRY_SECS)
            self._server = None
            self._server_retry_at = time.monotonic() + SERVER_RETRY_SECS

    def _reap_idle_server(self):
        """Forget a fork server that ended on its own (idle exit, or it died): reaped at once, so
        an idle Berth holds no trace of it; the next task starts a new one."""
        if self._server is not None and not self.children:
            self._server.poll()
            if self._server.closed:
                self._server.kill()     # reaps it
                self._server = None

    def _spawn(self, task):
        try:
            proc = self._fork(task) or self._spawn_process(task)
        except OSError as e:
            store.finish(task.id, error=store.abnormal_error(store.CRASHED, task,
                                                             f"Could not start the task process: {e}"))
            return
        deadline = time.monotonic() + task.timeout if task.timeout else None
        self.children[task.id] = Child(task.id, proc, deadline)  # tracked before anything can fail
        store.set_pid(task.id, proc.pid)

    def _fork(self, task):
        """The task's process from the fork server, started here when there is none (on demand:
        see the module docstring), or None when it cannot be had (tasks are then spawned)."""
        if self._server is not None:
            self._server.poll()     # an idle server ends on its own (fork_server.IDLE_EXIT_SECS)
            if self._server.closed:
                log.info("the task fork server has ended: starting a new one")
                self._server.kill()     # reaps it
                self._server = None
        if self._server is None and time.monotonic() >= self._server_retry_at:
            self._start_fork_server()
        if self._server is None:
            return None
        try:
            return Forked(self._server, self._server.run(task.id, task.body))
        except ForkServerGone:
            log.exception("the task fork server could not start task %s: spawning it", task.id)
            return None

    def _spawn_process(self, task):
        fd = logs.open_fd(task.id)  # early output (before the body's own capture) lands in the log
        try:
            return Spawned(commands.spawn(
                [sys.executable, "-m", "tasks.child", str(task.id), str(os.getpid())],
                cwd=ROOT, env=self._child_env(), stdin=commands.DEVNULL, stdout=fd, stderr=fd,
                start_new_session=True))  # own process group: stop reaches programs it started
        finally:
            os.close(fd)

    def _watch_children(self):
        if not self.children:
            return
        requests = store.stop_requests(self.children)
        now = time.monotonic()
        for child in list(self.children.values()):
            if child.proc.exited():
                self._reap(child)
                continue
            if child.reason is None:
                if child.task_id in requests:
                    self._signal(child, requests[child.task_id], "stop requested")
                elif child.deadline is not None and now >= child.deadline:
                    store.set_stop_reason(child.task_id, store.TIMEOUT)
                    self._signal(child, store.TIMEOUT, "time limit reached")
            elif not child.killed and now - child.term_at >= STOP_GRACE_SECS:
                _append_log(child.task_id,
                            f"task did not end within {STOP_GRACE_SECS:g}s of SIGTERM: SIGKILL")
                child.proc.signal(signal.SIGKILL)
                child.killed = True

    def _signal(self, child, reason, why):
        child.reason, child.term_at = reason, time.monotonic()
        _append_log(child.task_id, f"{why}: sending SIGTERM to the task process")
        child.proc.signal(signal.SIGTERM)

    def _reap(self, child):
        code = child.proc.wait()    # its process group is SIGKILLed first (Spawned.wait, fork_server)
        del self.children[child.task_id]
        task = store.get(child.task_id)
        if not task.active:
            return  # the body recorded its outcome
        reason = child.reason or task.stop_reason
        if code < 0:
            detail = f"Task process was killed by signal {signal.Signals(-code).name}"
        else:
            detail = f"Task process exited with code {code} without recording an outcome"
        error = store.abnormal_error(reason or store.CRASHED, task, detail)
        if store.finish(child.task_id, error=error, message=error["message"]):
            _append_log(child.task_id, f"task ended: {error['message']}")

    def _shutdown(self):
        """Server stopping: SIGTERM every task, SIGKILL what is left after a short grace, then
        record them as crashed right away rather than at the next start."""
        for child in self.children.values():
            child.proc.signal(signal.SIGTERM)
        deadline = time.monotonic() + min(STOP_GRACE_SECS, 3.0)
        while self.children and time.monotonic() < deadline:
            if all(c.proc.exited() for c in self.children.values()):
                break
            time.sleep(0.05)
        for child in list(self.children.values()):
            child.proc.signal(signal.SIGKILL)
            child.proc.wait()
            task = store.get(child.task_id)
            error = store.abnormal_error(task.stop_reason or store.CRASHED, task,
                                         "Berth stopped while the task was running")
            if store.finish(child.task_id, error=error, message=error["message"]):
                _append_log(child.task_id, f"task ended: {error['message']}")
        self.children.clear()
        if self._server is not None:
            self._server.close()
        store.unregister_runner(self.id)


def _exited(pid):
    """Has the child exited? Leaves it a zombie (WNOWAIT) so its process group stays ours."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _killpg(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _append_log(task_id, text):
    try:
        logs.append(task_id, text)
    except OSError:
        log.exception("could not write the log of task %s", task_id)
