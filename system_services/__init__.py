"""The services of this server as /services shows them: only the parts Berth really runs.

Cloudron's names are used, and a name is only listed when that part is there:
- `docker`  the engine every container runs on (host_services.Docker)
- `nginx`   Berth's reverse proxy (host_services.Nginx), when nginx is installed
- `postgresql`, `mysql`, `redis:<appId>`  addon containers (addons.services), once an app made them
- `mail`    the mail server (mail_server), once it is configured

Each answers with Cloudron's shape: {name, status (starting|active|stopped), memoryUsed,
memoryPercent, error, config}; `config.memory`/`memorySwap` are present only for a service
whose limit can be set (the containers), as the spec says. Restart, rebuild and memory
limits are recorded in the event log (`service.restart`, `service.rebuild`, `service.configure`).

`platform_config` (GET/POST /settings/platform_config) is a second view of the same limits:
{mysql: {memory, memorySwap}, postgresql: {...}}, read from and written to the same place.
"""
import asyncio
import logging
from typing import Protocol

import eventlog
import log_streams
from core.errors import BadRequest, NotFound
from system_services import addon_services, host_services, log_readers

log = logging.getLogger("berth.services")

# Cloudron lists its services in this order; each app's Redis (redis:<appId>) comes after them.
SHOWN_ORDER = ("mail", "mongodb", "mysql", "postgresql", "docker", "unbound", "sftp", "graphite", "nginx")


class Service(Protocol):
    name: str

    def status(self) -> dict: ...

    def restart(self) -> None: ...

    def rebuild(self) -> None: ...

    def set_memory_limit(self, memory: int) -> None: ...

    def log(self) -> log_readers.ServiceLog: ...


def _services() -> dict[str, Service]:
    found: list[Service] = [host_services.Docker()]
    if host_services.Nginx.exists():
        found.append(host_services.Nginx())
    found.extend(addon_services.running())
    order = {name: i for i, name in enumerate(SHOWN_ORDER)}
    found.sort(key=lambda s: (order.get(s.name, len(order)), s.name))
    return {s.name: s for s in found}


def _find(name: str) -> Service:
    service = _services().get(name)
    if service is None:
        raise NotFound("No such service")
    return service


def names() -> list[str]:
    """The services this server runs, in Cloudron's order (redis:<appId> last)."""
    return list(_services())


def get(name: str) -> dict:
    """{name, status, memoryUsed, memoryPercent, error, config} of one service; NotFound."""
    return {"name": name, **_find(name).status()}


def set_memory_limit(actor: eventlog.Actor, name: str, memory: int | None) -> None:
    """Apply a memory limit (bytes) to a service; 0 or None: its default. Containers get the
    engine's limit; host services refuse (Conflict, with the reason)."""
    memory = _bytes(memory, "memory")
    _find(name).set_memory_limit(memory)
    eventlog.record("service.configure", actor, id=name, memory=memory)


def restart(actor: eventlog.Actor, name: str) -> None:
    """Restart a service and return once it was told to (the status shows when it is back)."""
    service = _find(name)
    log.info("restarting service %s", name)
    service.restart()
    eventlog.record("service.restart", actor, id=name)


def rebuild(actor: eventlog.Actor, name: str) -> None:
    """Recreate a service from its configuration (a container from its image; nginx's files)."""
    service = _find(name)
    log.info("rebuilding service %s", name)
    service.rebuild()
    eventlog.record("service.rebuild", actor, id=name)


def download_logs(name: str, lines: int = 10, fmt: str = "json") -> str:
    return log_readers.render(_find(name).log().tail(lines), fmt)


async def follow_logs(name: str, lines: int = 10, after: int | None = None) -> log_streams.LineSource:
    """A log stream's line source: the last `lines` lines (or those after id `after`), then new ones."""
    service = await asyncio.to_thread(_find, name)
    source = await asyncio.to_thread(service.log)
    return await source.follow(lines, after)


# ---- platform_config: the same limits, by service name ---------------------------------------

def platform_config() -> dict:
    """{service: {memory, memorySwap}} of every service whose memory limit can be set."""
    out = {}
    for name, service in _services().items():
        config = service.status().get("config") or {}
        if "memory" in config and ":" not in name:  # per-app Redis instances are not platform settings
            out[name] = {"memory": config["memory"], "memorySwap": config.get("memorySwap", config["memory"])}
    return out


def set_platform_config(actor: eventlog.Actor, body: dict) -> None:
    """Set the limits of every service named in `body` (each {memory, memorySwap}). Everything is
    checked before anything is applied: an unknown or host service refuses the whole request."""
    services = _services()
    wanted = {}
    for name, entry in (body or {}).items():
        if not isinstance(entry, dict):
            raise BadRequest("must be an object with memory and memorySwap", field=name)
        service = services.get(name)
        if service is None:
            raise BadRequest("this server does not run that service", field=name)
        if "memory" not in (service.status().get("config") or {}):
            raise BadRequest(f"{name} is a host service: Berth sets no memory limit on it", field=name)
        wanted[name] = _bytes(entry.get("memory"), f"{name}.memory")
    for name, memory in wanted.items():
        services[name].set_memory_limit(memory)
        eventlog.record("service.configure", actor, id=name, memory=memory)


def _bytes(value: object, field: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest("must be a number of bytes (0: the default)", field=field)
    return value

