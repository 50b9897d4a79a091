"""The three daemons of one Layout: checking a configuration, starting, reloading, stopping, and
recognising them among the machine's processes.

Postfix and Dovecot daemonise on purpose (mail keeps flowing while Berth restarts); rspamd runs in
the foreground in its own session with its console log in a file, so every worker can write the
log (they could not open a file inside the 0700 data dir after dropping to _rspamd). Berth finds
each of them again by its pid file, trusting a pid only when that process is the right program
for this layout (a stale pid file may name a reused number). Callers hold the layout's lock.
Every program runs through core.commands.
"""
import contextlib
import os
import re
import signal
import time
from collections.abc import Iterable

from core import commands, files, processes
from mail_server.errors import MailServerError
from mail_server.layout import Layout

POSTFIX = "/usr/sbin/postfix"
POSTCONF = "/usr/sbin/postconf"
POSTMAP = "/usr/sbin/postmap"
DOVECOT = "/usr/sbin/dovecot"
DOVECONF = "/usr/bin/doveconf"
RSPAMD = "/usr/bin/rspamd"
RSPAMADM = "/usr/bin/rspamadm"
RSPAMD_MAIN = "/etc/rspamd/rspamd.conf"
TIMEOUT = 60
START_TIMEOUT = 30
RSPAMD_START_TIMEOUT = 180
NAMES = ("rspamd", "dovecot", "postfix")     # start order: what Postfix talks to comes first

_children: dict[str, commands.Popen] = {}     # rspamd children this process started (reaped here)


def available() -> bool:
    return all(os.access(p, os.X_OK) for p in (POSTFIX, DOVECOT, RSPAMD))


def _message(text: str | None) -> str:
    lines = [re.sub(r"^(postfix|postconf|doveconf|dovecot|rspamadm)(/\w+)?: ", "", line.strip())
             for line in (text or "").strip().splitlines()]
    return "; ".join(line for line in lines if line)[-1500:]


def _run(argv: list[str], what: str, env: dict | None = None) -> str:
    try:
        result = commands.run(argv, timeout=TIMEOUT, check=False, env=env)
    except (OSError, commands.CommandError) as e:
        raise MailServerError(f"{what}: {e}") from None
    if result.returncode != 0:
        raise MailServerError(f"{what}: " + (_message(result.stderr or result.stdout) or f"exit {result.returncode}"))
    return result.stdout


def _daemon(layout: Layout, argv: list[str], what: str, env: dict) -> None:
    """Run a command that forks a daemon: its output goes to a file, not a pipe (the daemon keeps
    the inherited descriptors, so reading a pipe to its end would wait for the daemon to exit)."""
    start_log = os.path.join(layout.logs, "start.log")
    with open(start_log, "w") as out:
        command = commands.spawn(argv, stdin=commands.DEVNULL, stdout=out, stderr=out, env=env)
        try:
            returncode = command.wait(timeout=START_TIMEOUT)
        except commands.TimeoutExpired:
            command.kill()
            command.wait()
            raise MailServerError(f"{what}: no answer within {START_TIMEOUT} s") from None
    if returncode != 0:
        said = _message(files.read_text(start_log)) or tail(layout.log_files()["postfix"])
        raise MailServerError(f"{what}: {said}")


def rspamd_vars(layout: Layout, conf: str) -> list[str]:
    return [f"--var=LOCAL_CONFDIR={conf}", f"--var=RUNDIR={layout.rspamd_run}",
            f"--var=DBDIR={layout.rspamd_run}", f"--var=LOGDIR={layout.logs}"]


# -- checks --------------------------------------------------------------------------------------

def _postconf(argv: list[str]) -> None:
    """postconf and postmap only warn about what they would not parse: a warning is a refusal."""
    out = commands.run(argv, timeout=TIMEOUT, check=False)
    warnings = [line for line in (out.stderr or "").splitlines() if "warning" in line or "fatal" in line]
    if out.returncode not in (0, 1) or warnings:    # postmap -q: 1 = key not found
        raise MailServerError("Postfix refused the configuration: " + _message("\n".join(warnings) or out.stderr))


def check(layout: Layout, base: str, changed: Iterable[str]) -> None:
    """Ask each program whose files changed (`changed`: paths relative to `base`) whether its
    configuration under `base` (a candidate) is valid; MailServerError with the program's own
    words when it is not. rspamadm and `postfix check` take seconds, so they run only when their
    program's configuration changed: a new mailbox only touches Postfix's tables."""
    changed = set(changed)
    programs = {path.split("/", 1)[0] for path in changed}
    if "postfix" in programs:
        postfix = layout.postfix_conf(base)
        if changed & {"postfix/main.cf", "postfix/master.cf"}:
            _run([POSTFIX, "-c", postfix, "check"], "Postfix refused the configuration")
        _postconf([POSTCONF, "-c", postfix, "-n"])
        _postconf([POSTCONF, "-c", postfix, "-M"])
        _postconf([POSTMAP, "-c", postfix, "-q", "probe@berth.invalid", f"regexp:{postfix}/blocklist"])
    if "dovecot" in programs:
        # -x reads the files the configuration names (certificate and key) as Dovecot will.
        _run([DOVECONF, "-c", layout.dovecot_conf(base), "-x", "-n"], "Dovecot refused the configuration")
    if "rspamd" in programs:
        _run([RSPAMADM, *rspamd_vars(layout, layout.rspamd_conf(base)), "configtest", "-c", RSPAMD_MAIN],
             "rspamd refused the configuration")


# -- finding the processes -----------------------------------------------------------------------

def _pid_from(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def pid(layout: Layout, name: str) -> int | None:
    """The pid of this layout's `name` main process, or None when it is not running."""
    if name == "postfix":
        master = _pid_from(layout.postfix_pid)
        ok = master is not None and processes.alive(master) and _cwd(master) == layout.queue \
            and "master" in " ".join(processes.cmdline(master))
    elif name == "dovecot":
        master = _pid_from(layout.dovecot_pid)
        ok = master is not None and processes.alive(master) \
            and layout.dovecot_conf() in processes.cmdline(master)
    else:
        master = _pid_from(layout.rspamd_pid)
        ok = master is not None and processes.alive(master) and "rspamd" in " ".join(processes.cmdline(master)) \
            and _logs_to(master, layout.log_files()["rspamd"])
    return master if ok else None


def _cwd(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return ""


def _logs_to(pid: int, path: str) -> bool:
    """rspamd retitles itself ("rspamd: main process", over its environment too): ours is the
    one whose output goes to this layout's rspamd log."""
    try:
        return os.readlink(f"/proc/{pid}/fd/1") == path
    except OSError:
        return False


def status(layout: Layout) -> dict:
    from mail_server import state
    procs = {name: {"running": (p := pid(layout, name)) is not None, "pid": p} for name in NAMES}
    return {"running": all(p["running"] for p in procs.values()), "processes": procs,
            "error": state.read(layout).get("error")}


# -- starting, reloading, stopping ---------------------------------------------------------------

def _wait(predicate, what: str, log: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise MailServerError(f"{what} did not come up: {tail(log)}")


def tail(path: str, lines: int = 5) -> str:
    try:
        with open(path, errors="replace") as f:
            text = f.read()[-8000:]
    except FileNotFoundError:
        return "no message in its log"
    return _message("\n".join(text.strip().splitlines()[-lines:])) or "no message in its log"


def start(layout: Layout, name: str, env: dict[str, str]) -> int:
    """Start `name` with the working configuration; its pid once it serves."""
    logs = layout.log_files()
    if name == "postfix":
        _daemon(layout, [POSTFIX, "-c", layout.postfix_conf(), "start"], "Postfix did not start", env)
        sockets = [os.path.join(layout.queue, "public", "pickup")]
    elif name == "dovecot":
        _daemon(layout, [DOVECOT, "-c", layout.dovecot_conf()], "Dovecot did not start", env)
        sockets = [os.path.join(layout.private, "auth"), os.path.join(layout.private, "dovecot-lmtp")]
    else:
        _hs_cache()
        with open(logs["rspamd"], "a") as out:
            child = commands.spawn([RSPAMD, "-f", "-u", "_rspamd", "-g", "_rspamd", "-c", RSPAMD_MAIN,
                                    *rspamd_vars(layout, layout.rspamd_conf())],
                                   stdin=commands.DEVNULL, stdout=out, stderr=out, start_new_session=True,
                                   env=env)
        _children[layout.root] = child
        # In the foreground rspamd writes no pid file: Berth writes it, to find it again later.
        files.write_atomic(layout.rspamd_pid, f"{child.pid}\n", 0o600)
        sockets = [os.path.join(layout.private, "rspamd-milter")]
    # rspamd compiles its rules before its workers listen: minutes on a cold cache of a busy machine.
    _wait(lambda: pid(layout, name) is not None and all(os.path.exists(s) for s in sockets),
          {"postfix": "Postfix", "dovecot": "Dovecot", "rspamd": "rspamd"}[name], logs[name],
          RSPAMD_START_TIMEOUT if name == "rspamd" else START_TIMEOUT)
    return pid(layout, name)


def _hs_cache() -> None:
    from mail_server.rspamd_config import HS_CACHE
    os.makedirs(HS_CACHE, mode=0o755, exist_ok=True)
    with contextlib.suppress(KeyError):
        import pwd
        user = pwd.getpwnam("_rspamd")
        os.chown(HS_CACHE, user.pw_uid, user.pw_gid)


def _log_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _logged_since(path: str, offset: int, marker: str) -> bool:
    try:
        with open(path, errors="replace") as f:
            f.seek(offset)
            return marker in f.read()
    except OSError:
        return False


def reload(layout: Layout, name: str, env: dict[str, str]) -> None:
    """Make `name` read the working configuration again, and return once it serves with it."""
    log = layout.log_files()[name]
    master = pid(layout, name)
    if master is None:
        return
    if name == "postfix":
        offset = _log_size(log)
        _daemon(layout, [POSTFIX, "-c", layout.postfix_conf(), "reload"], "Postfix did not reload", env)
        _wait(lambda: _logged_since(log, offset, f"master[{master}]: reload"), "Postfix's reload", log)
    elif name == "dovecot":
        offset = _log_size(log)
        os.kill(master, signal.SIGHUP)
        _wait(lambda: _logged_since(log, offset, "SIGHUP received"), "Dovecot's reload", log)
    else:
        # rspamd loads the new configuration in the main process, then replaces its workers:
        # it serves the new rules once none of the old workers is left and a new one listens.
        old = set(processes.children(master))
        os.kill(master, signal.SIGHUP)
        _wait(lambda: not (old & set(processes.children(master))) and bool(processes.children(master)),
              "rspamd's reload", log, RSPAMD_START_TIMEOUT)


def stop(layout: Layout, name: str, timeout: float = 15) -> bool:
    """Stop `name` (its whole process group for rspamd); SIGKILL what is left after `timeout`.
    True if it was running."""
    master = pid(layout, name)
    if master is None:
        return False
    kids = _descendants(master)
    if name == "postfix":
        with contextlib.suppress(MailServerError):
            _daemon(layout, [POSTFIX, "-c", layout.postfix_conf(), "stop"], "Postfix did not stop", None)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(master, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and processes.alive(master):
        _reap(layout)
        time.sleep(0.05)
    for p in [master, *kids]:
        if processes.alive(p):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
    _reap(layout)
    return True


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        kids = processes.children(todo.pop())
        out += kids
        todo += kids
    return out


def _reap(layout: Layout) -> None:
    child = _children.get(layout.root)
    if child is not None and child.poll() is not None:
        _children.pop(layout.root, None)
