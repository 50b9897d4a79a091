"""Warm task processes: one process per runner, with the task bodies' imports done, that forks a
child per task. `python -m tasks.fork_server <runner pid> <socket fd> [<idle exit seconds>]`.
The runner starts it when a task needs it (not at start-up: an idle Berth carries none) and it
ends after IDLE_EXIT_SECS without a task (tasks.runner).

Why: a fresh interpreter per task cost about a quarter of a second before the body ran (process
start, then importing core, models and the body's package); a fork of a process that has done
all that takes a few milliseconds. Every task still runs in a process of its own with the
guarantees of tasks.child: its own session and process group (stop, SIGKILL and the time limit
reach whatever it started), stderr/stdout = the task log, SIGTERM -> TaskStopped, PR_SET_PDEATHSIG.
The chain of parent-death signals keeps "a task dies with its runner": the server dies with the
runner thread that started it, each task process dies with the server.

What is deliberately NOT done here, before the fork: opening the database (a connection must not
be shared across fork: each child opens its own, tasks.child.run), creating a Docker client,
starting threads (the server stays single-threaded, so fork copies no lock held by another
thread). Configuration is read once, by core.config, in the server from the runner's
environment, and again by each child (tasks.child.run), as before.

Protocol (one JSON object per line over a socketpair; the runner's side is ForkServer):
    runner -> server   {"run": task_id, "body": name}      {"signal": pid, "sig": n} (unused by the runner)
    server -> runner   {"started": task_id, "pid": pid}   {"failed": task_id, "error": text}
                       {"exited": pid, "code": n}  (n as Popen.returncode: -signal when killed)
The server owns its children: it reaps them, and before reaping it SIGKILLs the child's process
group (while the child is an unreaped zombie its pid, the group id, cannot be reused), as the
runner did for spawned task processes. The runner signals a child's process group itself (stop,
time limit, SIGKILL), as long as no exit was reported for it.
"""
import contextlib
import importlib
import json
import os
import selectors
import signal
import socket
import sys
import time

from core import commands, config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START_TIMEOUT = 60.0    # seconds for the server to answer a run request (its imports come first)
# A server with no task for this long ends: warm while tasks come, and an idle Berth does not keep
# the ~70 MB of a second interpreter with every body module imported. The runner starts a new one
# for the next task (that task pays the start-up once, as a spawned one would: its own body's
# module is imported first, the others while the server is idle).
IDLE_EXIT_SECS = 600.0
# Libraries that task bodies import where they use them, not at the top of their modules, so that
# the server workers (which import the same modules for the API) do not carry them while idle
# (certificates.acme_client, dns_providers, mail.status, accounts.external_ldap). Preloaded here
# after the bodies' modules, so a forked task does not pay their import (~50-150 ms each) either.
LAZY_LIBRARIES = ("dns.resolver", "dns.reversename", "dns.update", "dns.query", "dns.tsigkeyring",
                  "josepy", "acme.client", "acme.challenges", "acme.crypto_util", "lexicon.config", "ldap3")


# ---- the runner's side ------------------------------------------------------------------------

class ForkServerGone(OSError):
    """The fork server is not there (it never started, or it ended)."""


class ForkServer:
    """The runner's handle on its fork server. Used from the runner thread only."""

    def __init__(self, env: dict[str, str], idle_exit: float = IDLE_EXIT_SECS) -> None:
        ours, theirs = socket.socketpair()
        try:
            self.proc = commands.spawn(
                [sys.executable, "-m", "tasks.fork_server", str(os.getpid()), str(theirs.fileno()), str(idle_exit)],
                cwd=ROOT, env=env, stdin=commands.DEVNULL, pass_fds=(theirs.fileno(),),
                start_new_session=True)   # no terminal signal for the server group meant for Berth
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.sock = ours
        self.sock.setblocking(False)
        self._buffer = b""
        self.exits: dict[int, int] = {}     # pid -> exit code, reported and not yet collected
        self.closed = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _send(self, message):
        if self.closed:
            raise ForkServerGone("the fork server has ended")
        data = (json.dumps(message) + "\n").encode()
        self.sock.setblocking(True)
        try:
            self.sock.sendall(data)
        except OSError as e:
            self._close()
            raise ForkServerGone(f"the fork server has ended: {e}") from None
        finally:
            if not self.closed:
                self.sock.setblocking(False)

    def _receive(self, timeout: float | None) -> list[dict]:
        """What arrived (waiting up to `timeout` for something; None: do not wait)."""
        if self.closed:
            return []
        if timeout is not None:
            self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, TimeoutError, socket.timeout):
            return []
        except OSError:
            data = b""
        finally:
            if not self.closed:
                self.sock.setblocking(False)
        if not data:
            self._close()
            return []
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        messages = [json.loads(line) for line in lines if line.strip()]
        for message in messages:
            if "exited" in message:
                self.exits[message["exited"]] = message["code"]
        return messages

    def poll(self) -> None:
        """Collect the exit reports that arrived."""
        while self._receive(None):
            pass

    def run(self, task_id: int, body: str, timeout: float = START_TIMEOUT) -> int:
        """Fork the process of task `task_id` (body `body`, a tasks.registry name); its pid once
        it runs in its own session. ForkServerGone / OSError when it could not be started."""
        self._send({"run": task_id, "body": body})
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise ForkServerGone(f"the fork server did not start task {task_id} within {timeout:g} s")
            for message in self._receive(left):
                if message.get("started") == task_id:
                    return message["pid"]
                if message.get("failed") == task_id:
                    raise OSError(message["error"])
            if self.closed:
                raise ForkServerGone("the fork server ended before starting the task")

    def signal(self, pid: int, sig: int) -> None:
        """Signal the process group of the server's child `pid`, unless its exit was reported.
        Sent by the runner itself, not through the server: a server busy importing a module must
        not delay a stop. (The group id could only be another group's if the child had been
        reaped and its pid reused by a new group leader in the moment before the report arrives.)"""
        self.poll()
        if pid not in self.exits:
            _killpg(pid, sig)

    def exited(self, pid: int) -> bool:
        self.poll()
        return pid in self.exits or self.closed

    def wait(self, pid: int, timeout: float = 3.0) -> int:
        """The exit code of child `pid` (-SIGKILL when the server ended without reporting it)."""
        deadline = time.monotonic() + timeout
        while pid not in self.exits and not self.closed and time.monotonic() < deadline:
            self._receive(max(0.001, deadline - time.monotonic()))
        return self.exits.pop(pid, -signal.SIGKILL)

    def _close(self):
        if not self.closed:
            self.closed = True
            self.sock.close()

    def close(self) -> None:
        """End the server (the runner has ended its tasks): SIGKILL, which PR_SET_PDEATHSIG passes
        on to any task process still there. Not a polite request: the server may be busy with an
        import for a second, and a stopping Berth does not wait for that."""
        self.kill()

    def kill(self) -> None:
        self._close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _killpg(pgid, sig):
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


# ---- the server -------------------------------------------------------------------------------

def _body_modules() -> list[str]:
    """The modules of every task body (the test suite's too when configured), most used first,
    then the libraries they import lazily."""
    from tasks import registry
    modules = [target.partition(":")[0] for target in registry.BODIES.values()]
    if config.get().test_task_bodies:
        modules.append(config.get().test_task_bodies)
    return list(dict.fromkeys(modules + list(LAZY_LIBRARIES)))


def _preload(module: str) -> None:
    """Import `module` for the children. One that fails to import here is imported again, and its
    error reported, by the task that needs it."""
    try:
        importlib.import_module(module)
    except Exception as e:  # noqa: BLE001 - see above
        sys.stderr.write(f"fork server: cannot preload {module}: {e}\n")


class Server:
    """Preloads the body modules one at a time while idle (some take a second: a request waits
    for at most the one import under way), and imports the module of a task's body before forking
    its process when the preload has not got there yet."""

    def __init__(self, sock: socket.socket, idle_exit: float = IDLE_EXIT_SECS) -> None:
        self.sock = sock
        self.idle_exit = idle_exit
        self.children: dict[int, int] = {}     # pid -> task id
        self.preload = _body_modules()
        self.buffer = b""
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        signal.signal(signal.SIGCHLD, lambda *_: None)   # a handler, so the wakeup fd gets the signal
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)

    def send(self, message):
        try:
            self.sock.sendall((json.dumps(message) + "\n").encode())
        except OSError:
            pass        # the runner is gone: PR_SET_PDEATHSIG ends us

    def serve(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self.sock, selectors.EVENT_READ)
        selector.register(self.wake_r, selectors.EVENT_READ)
        busy_at = time.monotonic()
        while True:
            events = selector.select(timeout=0 if self.preload else min(1.0, self.idle_exit))
            if not events and self.preload:
                _preload(self.preload.pop(0))
            if events or self.children:
                busy_at = time.monotonic()
            elif time.monotonic() - busy_at > self.idle_exit:
                return      # idle: the runner sees the socket close and starts a new server when needed
            for key, _ in events:
                if key.fileobj is self.sock:
                    data = self.sock.recv(65536)
                    if not data:
                        self.shutdown()
                        return
                    self.buffer += data
                    *lines, self.buffer = self.buffer.split(b"\n")
                    for line in lines:
                        if line.strip():
                            self.handle(json.loads(line))
                else:
                    with contextlib.suppress(BlockingIOError):
                        while os.read(self.wake_r, 512):
                            pass
            self.reap()

    def handle(self, message):
        if "run" in message:
            self.warm(message.get("body"))
            self.fork(int(message["run"]))
        elif "signal" in message:
            if message["signal"] in self.children:
                _killpg(message["signal"], message["sig"])

    def warm(self, body):
        from tasks import registry
        try:
            target = registry._target(registry.BODIES, body or "")
        except Exception:  # noqa: BLE001 - the child reports a bad name
            return
        module = (target or "").partition(":")[0]
        if module in self.preload:
            self.preload.remove(module)
            _preload(module)

    def reap(self):
        for pid in list(self.children):
            try:
                done = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
            except ChildProcessError:
                done = True
            if not done:
                continue
            _killpg(pid, signal.SIGKILL)    # what it started and left behind goes down with it
            try:
                _, status = os.waitpid(pid, 0)
                code = os.waitstatus_to_exitcode(status)
            except ChildProcessError:
                code = -signal.SIGKILL
            del self.children[pid]
            self.send({"exited": pid, "code": code})

    def fork(self, task_id):
        from tasks import logs
        try:
            log_fd = logs.open_fd(task_id)     # early output (before the body's own capture) lands in the log
        except OSError as e:
            self.send({"failed": task_id, "error": f"cannot open the task log: {e}"})
            return
        ready_r, ready_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as e:
            os.close(log_fd)
            os.close(ready_r)
            os.close(ready_w)
            self.send({"failed": task_id, "error": str(e)})
            return
        if pid == 0:
            self._become_task(task_id, log_fd, ready_r, ready_w)   # never returns
        os.close(log_fd)
        os.close(ready_w)
        os.read(ready_r, 1)     # EOF once the child has its own session: stop can reach it from now on
        os.close(ready_r)
        self.children[pid] = task_id
        self.send({"started": task_id, "pid": pid})

    def _become_task(self, task_id, log_fd, ready_r, ready_w):
        server_pid = os.getppid()
        try:
            os.setsid()     # own session and process group, as start_new_session gave the spawned ones
            os.close(ready_r)
            os.close(ready_w)
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for fd in (self.wake_r, self.wake_w, self.sock.fileno()):
                with contextlib.suppress(OSError):
                    os.close(fd)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.dup2(log_fd, 1)
            os.dup2(log_fd, 2)
            os.close(devnull)
            os.close(log_fd)
            from tasks import child
            child.main(["fork", str(task_id), str(server_pid)])
        except BaseException:  # noqa: B902 - nothing may return into the server's loop
            with contextlib.suppress(BaseException):
                import traceback
                os.write(2, ("task process failed to start:\n" + traceback.format_exc()).encode("utf-8", "replace"))
        os._exit(1)

    def shutdown(self):
        """The runner closed the socket (or died): no child outlives the server."""
        for pid in self.children:
            _killpg(pid, signal.SIGKILL)
        for pid in list(self.children):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.children.clear()


def main(argv: list[str]) -> None:
    runner_pid, fd = int(argv[1]), int(argv[2])
    idle_exit = float(argv[3]) if len(argv) > 3 else IDLE_EXIT_SECS
    from tasks import child
    child.die_with_parent(runner_pid)
    config.use(config.load())
    from tasks import registry  # noqa: F401 - the engine and the models, for every child
    sock = socket.socket(fileno=fd)
    sock.setblocking(True)
    Server(sock, idle_exit).serve()


if __name__ == "__main__":
    main(sys.argv)
