"""The services other packages run, seen the way /services shows them:
- the addon containers (addons.services: `postgresql`, `mysql`, `redis:<appId>`), which exist
  once an app needed them;
- the mail server (mail_server), once it is configured.

This module only adapts their answers to Cloudron's shape; starting, healing and limiting them
is theirs.
"""
import logging
import os

import containers
import log_streams
import mail_server
from addons import credentials, services
from core import processes
from core.errors import BadRequest, Conflict
from log_streams import LogLine
from system_services import log_readers

log = logging.getLogger("berth.services")


def engine_name(name: str) -> str:
    """Cloudron's `redis:<appId>` is addons.services' `redis-<appId>`; the shared ones are the same."""
    return "redis-" + name[6:] if name.startswith("redis:") else name


def cloudron_name(name: str) -> str:
    return "redis:" + name[6:] if name.startswith("redis-") else name


class AddonService:
    """One addon container: the shared PostgreSQL or MySQL, or one app's Redis."""

    def __init__(self, name: str) -> None:
        self.name = name                     # as /services shows it
        self.engine_name = engine_name(name)  # as addons.services and the engine know it

    def status(self) -> dict:
        raw = services.status(self.engine_name)
        limit = (raw.get("config") or {}).get("memoryLimit") or 0
        # Service containers get no swap (memswap = memory), so memorySwap is the same number.
        return {"status": raw.get("status") or "stopped", "memoryUsed": int(raw.get("memoryUsed") or 0),
                "memoryPercent": int(raw.get("memoryPercent") or 0), "error": raw.get("error"),
                "config": {"memory": limit, "memorySwap": limit}}

    def restart(self) -> None:
        services.restart(self.engine_name)

    def rebuild(self) -> None:
        # A new container from the current image, limit and credentials; the data folder stays.
        containers.remove_service(self.engine_name)
        services.restart(self.engine_name)

    def set_memory_limit(self, memory: int) -> None:
        if memory == 0:
            memory = services.DEFAULT_MEMORY[services.kind(self.engine_name)]
        elif memory < services.MIN_MEMORY:
            raise BadRequest(f"must be 0 (the default) or at least {services.MIN_MEMORY} bytes", field="memory")
        services.set_memory_limit(self.engine_name, memory)

    def log(self) -> log_readers.ServiceLog:
        return ContainerLog(self.name, self.engine_name)


class ContainerLog:
    """What an addon container printed (stdout and stderr), stamped by the engine."""

    def __init__(self, name: str, engine: str) -> None:
        self.name, self.engine = name, engine

    def tail(self, lines: int) -> list[LogLine]:
        count = None if lines < 0 else lines
        return log_streams.strictly_increasing([log_streams.stamped_line(self.name, when, text)
                                                for when, text in containers.service_logs(self.engine, count)])

    async def follow(self, lines: int, after: int | None) -> log_streams.LineSource:
        return await log_streams.replay_then_follow(
            self.name, self.tail, lambda: containers.follow_logs_async("", lines=0, service=self.engine), lines, after)


class MailService:
    """The mail server (Postfix, Dovecot and rspamd on the host, mail_server)."""

    name = "mail"

    def status(self) -> dict:
        raw = mail_server.status()
        pids = [p["pid"] for p in (raw.get("processes") or {}).values() if p.get("running") and p.get("pid")]
        state = "active" if raw.get("running") else "starting" if pids else "stopped"
        used = processes.memory_used(pids)
        total = processes.total_memory()
        return {"status": state, "memoryUsed": used, "memoryPercent": int(used * 100 / total) if total else 0,
                "error": raw.get("error"), "config": {}}

    def restart(self) -> None:
        mail_server.restart()

    def rebuild(self) -> None:
        self.restart()  # nothing to recreate: it starts again from its working configuration

    def set_memory_limit(self, memory: int) -> None:
        raise Conflict("the mail server runs on the host, not in a container: Berth sets no memory limit on it")

    def log(self) -> log_readers.ServiceLog:
        files = mail_server.logs()
        return log_readers.MergedLog([log_readers.FileLog(path, "mail", log_readers.any_line)
                                      for _, path in sorted(files.items())], "mail")


def _mail_configured() -> bool:
    """The mail server is a service once it has a working configuration (a mail domain was enabled)."""
    try:
        return os.path.exists(mail_server.server().layout.current)
    except Exception:  # noqa: BLE001 - a mail server that cannot even say where it lives is not listed
        log.exception("the mail server's state could not be read")
        return False


def running() -> list:
    """The services of other packages that exist now. The shared PostgreSQL and MySQL count once
    an app made them (before that there is nothing to show); each Redis while its app has it."""
    found = []
    try:
        for name in services.list_names():
            if credentials.service(name) is not None:
                found.append(AddonService(cloudron_name(name)))
    except Exception:  # noqa: BLE001 - a database hiccup must not hide docker and nginx from the list
        log.exception("listing the addon services failed")
    if _mail_configured():
        found.append(MailService())
    return found
