"""The services that run on the host itself, not in a container: the Docker engine and Berth's nginx.

Their status comes from the processes themselves (a pid that is really that program, its
resident memory through core.processes), never from a record Berth keeps: a service stopped
from outside shows `stopped` at the next request.

Memory limits are refused for both (409): they are host processes, not containers, and Berth
does not manage a service unit for them (nginx is Berth's own daemon under the data dir, dockerd
is the machine's). Restart:
- nginx: a reload (SIGHUP, checked with `nginx -t` first) when it runs, a start otherwise.
  Rebuild writes its configuration and every vhost again from what they record, then reloads.
- docker: `systemctl restart docker` where systemd runs the engine; anywhere else Berth does not
  know how the engine was started and refuses (409) rather than kill it. No rebuild (409).
"""
import logging
import os

import containers
import domains
import reverse_proxy
from core import commands, config, processes
from core.errors import Conflict, DependencyFailed
from system_services import log_readers

log = logging.getLogger("berth.services")

SYSTEMD_RUNTIME = "/run/systemd/system"   # exists only when systemd is the init system


def _percent(used: int) -> int:
    total = processes.total_memory()
    return int(used * 100 / total) if total else 0


def _status(status: str, used: int = 0, error: str | None = None) -> dict:
    # No `config.memory`: per the spec, a service without one cannot be configured.
    return {"status": status, "memoryUsed": used, "memoryPercent": _percent(used), "error": error, "config": {}}


def _systemd() -> bool:
    return os.path.isdir(SYSTEMD_RUNTIME)


class Nginx:
    """Berth's reverse proxy (reverse_proxy): the nginx under <data dir>/nginx."""

    name = "nginx"

    @staticmethod
    def exists() -> bool:
        return reverse_proxy.nginx_available()

    def status(self) -> dict:
        master = reverse_proxy.proxy().pid()
        if master is None:
            return _status("stopped")
        workers = processes.children(master)
        # A master without workers is still starting (or they all just died and it forks new ones).
        return _status("active" if workers else "starting", processes.memory_used([master, *workers]))

    def restart(self) -> None:
        proxy = reverse_proxy.proxy()
        if not proxy.reload():  # not running: start it with the configuration as it is
            proxy.ensure_running(domains.certificate_files)

    def rebuild(self) -> None:
        reverse_proxy.refresh_certificates(domains.certificate_files)

    def set_memory_limit(self, memory: int) -> None:
        raise Conflict("nginx runs on the host as Berth's own daemon, not in a container: "
                       "Berth sets no memory limit on it")

    def log(self) -> log_readers.ServiceLog:
        return log_readers.FileLog(reverse_proxy.proxy().layout.error_log, self.name, log_readers.nginx_line)


def _dockerd() -> int | None:
    """The local dockerd, or None (the engine may be on another machine: DOCKER_HOST=tcp://...)."""
    found = processes.find(lambda argv: os.path.basename(argv[0]) == "dockerd")
    return min(found) if found else None


def _output_file(pid: int) -> str | None:
    """The regular file a process's stderr goes to (a dockerd started with `>file 2>&1`), if any.
    Linux only; Berth runs as root, so it may read another process's descriptors."""
    try:
        target = os.readlink(f"/proc/{pid}/fd/2")
    except OSError:
        return None
    return target if target.startswith("/") and os.path.isfile(target) else None


class Docker:
    """The Docker engine every app and addon container runs on."""

    name = "docker"

    @staticmethod
    def exists() -> bool:
        return True  # Berth cannot run an app without it: shown even (and especially) when it is down

    def status(self) -> dict:
        pid = _dockerd()
        used = processes.memory_used([pid]) if pid else 0
        if containers.ping():
            return _status("active", used)
        error = f"the Docker engine does not answer at {config.get().docker_host}"
        return _status("starting" if pid else "stopped", used, error)

    def restart(self) -> None:
        if not _systemd():
            raise Conflict("the Docker engine is not run by systemd on this machine, so Berth does not know "
                           "how to start it again: restart it the way it was started")
        log.warning("restarting the Docker engine: every container restarts with it")
        try:
            commands.run(["systemctl", "restart", "docker"], timeout=120)
        except commands.CommandError as e:
            raise DependencyFailed(f"the Docker engine did not restart: {e}") from None

    def rebuild(self) -> None:
        raise Conflict("the Docker engine runs on the host, not in a container: there is nothing to rebuild")

    def set_memory_limit(self, memory: int) -> None:
        raise Conflict("the Docker engine runs on the host, not in a container: Berth sets no memory limit on it")

    def log(self) -> log_readers.ServiceLog:
        if _systemd() and commands_available("journalctl"):
            return log_readers.JournalLog("docker", self.name)
        pid = _dockerd()
        path = _output_file(pid) if pid else None
        if path:
            return log_readers.FileLog(path, self.name, log_readers.logrus_line)
        return log_readers.NoLog(self.name)


def commands_available(program: str) -> bool:
    return any(os.access(os.path.join(d, program), os.X_OK) for d in os.get_exec_path())
