"""The nginx process of one Layout: checking a configuration (`nginx -t`), starting, reloading and
stopping it, and recognising it among the machine's processes.

nginx daemonises on purpose: apps stay reachable while Berth itself restarts or is upgraded. So
Berth finds its nginx again by the pid file, and trusts a pid only when that process is an nginx
master started with this layout's nginx.conf (a stale pid file may name a reused number).
Callers hold apply.locked(layout) around anything that changes the running process.
"""
import contextlib
import functools
import os
import re
import shutil
import signal
import time

from core import commands, processes
from core.errors import DependencyFailed
from reverse_proxy.layout import Layout

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
RELOAD_TIMEOUT = 15     # seconds for new workers to serve after a start or reload
COMMAND_TIMEOUT = 30    # seconds for `nginx -t` and for the start command to return


class ProxyError(DependencyFailed):
    """nginx refused a configuration or a command; the message carries nginx's own words."""


def nginx_available() -> bool:
    return os.path.exists(NGINX) and os.access(NGINX, os.X_OK)


@functools.lru_cache(maxsize=1)
def compiled_without() -> frozenset[str]:
    """Modules this nginx was built without (their temp path directives would be unknown)."""
    try:
        out = commands.run([NGINX, "-V"], timeout=10, check=False).stderr
    except (OSError, commands.CommandError):
        return frozenset()
    return frozenset(re.findall(r"--without-http_(\w+)_module", out))


def nginx_message(text: str | None) -> str:
    """nginx's diagnostics without the noise of its prefixes and the final test verdict."""
    lines = []
    for line in (text or "").strip().splitlines():
        line = re.sub(r"^(nginx: )?(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d )?", "", line.strip())
        if line and "test failed" not in line:
            lines.append(line)
    return "; ".join(lines)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def error_tail(layout: Layout, lines: int = 5) -> str:
    text = _read(layout.error_log)
    return nginx_message("\n".join(text.strip().splitlines()[-lines:])) or "no message in the error log"


def test(layout: Layout, conf: str) -> None:
    """`nginx -t` of `conf` (the working nginx.conf or a candidate); ProxyError with nginx's words."""
    # -e stderr: the verdict comes back on stderr instead of being mixed into the live error log.
    argv = [NGINX, "-t", "-q", "-e", "stderr", "-p", layout.root + "/", "-c", conf]
    try:
        result = commands.run(argv, timeout=COMMAND_TIMEOUT, check=False)
    except commands.CommandError as e:      # timed out
        raise ProxyError(f"nginx could not check the configuration: {e}") from None
    if result.returncode != 0:
        raise ProxyError("nginx rejected the new configuration: "
                         + nginx_message(result.stderr or result.stdout))


def _title(pid: int) -> str:
    """The process title nginx gives itself ("nginx: master process /usr/sbin/nginx -c ...")."""
    return " ".join(processes.cmdline(pid))


def pid(layout: Layout) -> int | None:
    """The pid of this layout's nginx master, or None when it is not running."""
    try:
        with open(layout.pid_file) as f:
            master = int(f.read().strip())
    except (OSError, ValueError):
        return None
    title = _title(master)
    if not processes.alive(master) or "nginx: master process" not in title or layout.conf not in title:
        return None
    return master


def _is_title(prefix):
    return lambda argv: " ".join(argv).startswith(prefix)


def orphans(layout: Layout) -> list[int]:
    """Workers left behind by a master that was killed outright: they still hold the ports.
    Ours are recognised by the error log they have open."""
    workers = processes.find(_is_title("nginx: worker"))
    if not workers:
        return []
    # Masters are looked up after the workers: a worker a live master just forked is its child.
    served = {kid for master in processes.find(_is_title("nginx: master")) for kid in processes.children(master)}
    return [p for p in workers if p not in served and layout.error_log in processes.open_files(p)]


def _kill(pids, sig=signal.SIGKILL):
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, sig)


def start(layout: Layout) -> int:
    """Start nginx with the working configuration (checked first); returns the master's pid once
    its workers run. ProxyError with nginx's reason (a port in use, typically)."""
    test(layout, layout.conf)
    _kill(orphans(layout))
    argv = [NGINX, "-e", layout.error_log, "-p", layout.root + "/", "-c", layout.conf]
    with open(layout.start_log, "w") as out:
        # nginx forks into the background and the command returns once the sockets are bound
        # (or with the reason they could not be). Its output goes to a file, not a pipe: the
        # daemon keeps the inherited descriptors until it has opened its own log.
        command = commands.spawn(argv, stdout=out, stderr=out, stdin=commands.DEVNULL)
        try:
            returncode = command.wait(timeout=COMMAND_TIMEOUT)
        except commands.TimeoutExpired:
            command.kill()
            command.wait()
            raise ProxyError(f"nginx did not start within {COMMAND_TIMEOUT} s") from None
    if returncode != 0:
        raise ProxyError("nginx did not start: " + nginx_message(_read(layout.start_log)))
    deadline = time.monotonic() + RELOAD_TIMEOUT
    while time.monotonic() < deadline:
        master = pid(layout)
        if master is not None and processes.children(master):
            return master
        time.sleep(0.02)
    raise ProxyError("nginx did not come up: " + error_tail(layout))


def _workers(master: int) -> set[int]:
    """The master's live children. Read from /proc/<pid>/task/<pid>/children (the master has one
    thread): polling it costs microseconds, where asking psutil walks every process of the
    machine (milliseconds on a busy host). A zombie is not a worker: it is left out."""
    try:
        with open(f"/proc/{master}/task/{master}/children") as f:
            pids = [int(p) for p in f.read().split()]
    except (OSError, ValueError):
        return set(processes.children(master))
    return {p for p in pids if _state(p) not in ("Z", "X", "")}


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def reload(layout: Layout, master: int) -> None:
    """SIGHUP the master and wait until workers with the new configuration serve: the old
    workers have been told to finish ("shutting down"), which is when they stop accepting.
    (nginx itself gives the new workers 100 ms before it tells the old ones: most of a reload.)"""
    old = _workers(master)
    os.kill(master, signal.SIGHUP)
    deadline = time.monotonic() + RELOAD_TIMEOUT
    while time.monotonic() < deadline:
        kids = _workers(master)
        if kids - old and all("shutting down" in _title(p) for p in kids & old):
            return
        time.sleep(0.005)
    raise ProxyError("nginx did not apply the new configuration: " + error_tail(layout))


def drain(layout: Layout, timeout: float) -> bool:
    """Wait up to `timeout` s until no worker of an earlier configuration is left ("shutting
    down" workers finish their requests, then exit). True when none is left."""
    master = pid(layout)
    deadline = time.monotonic() + timeout
    while master is not None:
        if not any("shutting down" in _title(p) for p in _workers(master)):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def stop(layout: Layout, timeout: float = 10) -> bool:
    """Fast shutdown (open connections are closed); SIGKILL for what is left after `timeout`
    seconds. True if it was running."""
    master = pid(layout)
    if master is None:
        return False
    workers = processes.children(master)
    os.kill(master, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and processes.alive(master):
        time.sleep(0.02)
    _kill([p for p in [master] + workers if processes.alive(p)])  # no more asking
    with contextlib.suppress(FileNotFoundError):
        os.unlink(layout.pid_file)
    return True
