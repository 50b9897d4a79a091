"""Service containers (the addon database servers and each app's Redis) and the app network they
share with the app containers.

A service container is named `berth-svc-<instance id>-<service>` and labelled
`berth.service=<service>` + `berth.instance=<instance id>`, deliberately NOT `berth.managed`:
apps.reconcile treats a berth.managed container without an app as a stray and removes it.

The app network (`berth-apps-<instance id>`, a user-defined bridge) is per Berth instance, so
several test servers on one engine never see each other's databases; a service joins it with a
DNS alias (`postgresql`, `mysql`, `redis-<app id>`) by which the apps reach it, as on Cloudron.

exec_run streams both ways over the engine's hijacked exec connection: a dump or a restore of
any size passes through in 64 KiB pieces and is never held in memory.
"""
import fcntl
import os
import re
import socket
import struct
import threading
import time
from collections.abc import Iterable
from typing import BinaryIO

import docker.errors
import docker.types

from containers.engine import (
    LABEL_INSTANCE,
    ContainerError,
    check_memory_limit,
    client,
    engine,
    inspect_raw,
    instance_id,
    remove_container,
    remove_quietly,
    state_of,
)
from core import data_paths
from core.files import read_exact

LABEL_SERVICE = "berth.service"
LABEL_NETWORK = "berth.network"
STOP_TIMEOUT = 20           # databases get longer than apps to write their buffers on stop
LOG_CONFIG = {"max-size": "10m", "max-file": "3"}
SECOND = 1_000_000_000      # the engine counts health check intervals in nanoseconds
CHUNK = 64 * 1024
OUTPUT_CAP = 256 * 1024     # bytes of exec output kept (the tail) when stdout goes to a file
_SERVICE = re.compile(r"^[a-z0-9][a-z0-9.-]{0,79}$")
_network_lock = threading.Lock()


def service_container_name(service: str) -> str:
    """The engine's name of `service`'s container (postgresql, mysql, redis-<app id>)."""
    if not isinstance(service, str) or not _SERVICE.fullmatch(service):
        raise ValueError(f"{service!r} cannot name a service container")
    return f"berth-svc-{instance_id()}-{service}"


# --- the app network -------------------------------------------------------------------------

def app_network_name() -> str:
    return f"berth-apps-{instance_id()}"


def _find_network(name):
    found = client().api.networks(names=[name])
    return [n for n in found if n.get("Name") == name]


def app_network() -> str:
    """Ensure this Berth's app network exists and return its name.

    The engine (20.10) accepts two networks of one name, so creation is serialised by a lock
    file under the data dir (the instance id comes from that dir, so it is the right scope)."""
    name = app_network_name()
    with engine(f"Cannot inspect network {name}"):
        if _find_network(name):
            return name
    os.makedirs(data_paths.root(), exist_ok=True)
    with _network_lock, open(os.path.join(data_paths.root(), ".app-network.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with engine(f"Cannot create network {name}"):
            if not _find_network(name):
                client().api.create_network(name, driver="bridge", check_duplicate=True,
                                            labels={LABEL_INSTANCE: instance_id(), LABEL_NETWORK: "apps"})
    return name


def remove_app_network() -> None:
    """Remove this Berth's app network (tests and teardown); containers still on it are
    disconnected first. A missing network is fine."""
    name = app_network_name()
    with engine(f"Cannot remove network {name}"):
        for net in _find_network(name):
            for container_id in (client().api.inspect_network(net["Id"]).get("Containers") or {}):
                try:
                    client().api.disconnect_container_from_network(container_id, net["Id"], force=True)
                except docker.errors.NotFound:
                    pass
            try:
                client().api.remove_network(net["Id"])
            except docker.errors.NotFound:
                pass



def network_gateway(network: str | None = None) -> str:
    """The host's IPv4 address on `network` (None: the engine's default bridge): where a container
    on it reaches services listening on the host, such as Berth's mail server."""
    name = network or "bridge"
    with engine(f"Cannot inspect network {name}"):
        info = client().api.inspect_network(name)
    for entry in (info.get("IPAM") or {}).get("Config") or []:
        gateway = (entry.get("Gateway") or "").split("/")[0]
        if gateway and ":" not in gateway:
            return gateway
    raise ContainerError(f"network {name} has no IPv4 gateway")

# --- lifecycle -------------------------------------------------------------------------------

def run_service(name: str, image: str, *, env: dict | None = None, command: list[str] | None = None,
                binds: dict[str, str] | None = None, memory_limit: int | None = None,
                labels: dict | None = None, network: str | None = None,
                aliases: Iterable[str] = (), restart_policy: str = "unless-stopped",
                stop_signal: str = "SIGTERM", healthcheck: list[str] | None = None) -> dict:
    """(Re)create service `name`'s container from `image` and start it.

    `binds` maps host folder -> container folder (read-write); `command` is the image's CMD
    (its entrypoint stays); the container joins `network` (default: the app network) with the
    DNS `aliases`; `healthcheck` is a command the engine runs every 10 s (inspect's "health").
    Returns {"id", "name"}."""
    cname = service_container_name(name)
    network = network or app_network()
    remove_service(name)
    all_labels = dict(labels or {})
    all_labels.update({LABEL_SERVICE: name, LABEL_INSTANCE: instance_id()})
    api = client().api
    with engine(f"Cannot create container {cname}"):
        host_config = api.create_host_config(
            mounts=[docker.types.Mount(target, source, type="bind") for source, target in (binds or {}).items()],
            mem_limit=memory_limit or None, memswap_limit=memory_limit or None,
            restart_policy={"Name": restart_policy} if restart_policy else None,
            log_config=docker.types.LogConfig(type="json-file", config=LOG_CONFIG),
            network_mode=network, security_opt=["no-new-privileges"], cap_drop=["MKNOD", "SETFCAP"])
        created = api.create_container(
            image, command=command, name=cname, hostname=name[:63],
            environment=[f"{k}={v}" for k, v in (env or {}).items()], labels=all_labels,
            host_config=host_config, stop_signal=stop_signal,
            healthcheck={"test": ["CMD", *healthcheck], "interval": 10 * SECOND, "timeout": 5 * SECOND,
                         "retries": 3, "start_period": 300 * SECOND} if healthcheck else None,
            networking_config=api.create_networking_config(
                {network: api.create_endpoint_config(aliases=list(aliases))}))
    try:
        with engine(f"Cannot start container {cname}"):
            api.start(created["Id"])
    except ContainerError:
        remove_quietly(created["Id"])
        raise
    return {"id": created["Id"], "name": cname}


def remove_service(name: str) -> None:
    """Remove the service's container (running or not); its data folder stays. Missing is fine."""
    remove_container(service_container_name(name))


def _call(name, what, action):
    cname = service_container_name(name)
    with engine(f"Cannot {what} container {cname}"):
        try:
            action(cname)
        except docker.errors.NotFound:
            raise ContainerError(f"Container {cname} does not exist") from None


def start_service(name: str) -> None:
    """Start the service's stopped container (running already is fine). Missing: ContainerError."""
    _call(name, "start", client().api.start)


def restart_service(name: str, timeout: float = STOP_TIMEOUT) -> None:
    """Restart the service's container (starts it when stopped). Missing: ContainerError."""
    _call(name, "restart", lambda c: client().api.restart(c, timeout=timeout))


def stop_service(name: str, timeout: float = STOP_TIMEOUT) -> None:
    """Stop the service's container; Docker's restart policy leaves it stopped. Missing is fine."""
    cname = service_container_name(name)
    with engine(f"Cannot stop container {cname}"):
        try:
            client().api.stop(cname, timeout=timeout)
        except docker.errors.NotFound:
            pass


def update_service_memory(name: str, memory_limit: int) -> None:
    """Change the running container's memory limit in place (bytes, > 0)."""
    check_memory_limit(memory_limit)
    _call(name, "update memory limit of",
          lambda c: client().api.update_container(c, mem_limit=memory_limit, memswap_limit=memory_limit))


# --- state -----------------------------------------------------------------------------------

def service_inspect(name: str) -> dict | None:
    """The service container's state, or None when there is none: {id, name, running, status,
    health, restart_count, exit_code, oom_killed, error, started_at, finished_at, image, memory_limit,
    labels}."""
    cname = service_container_name(name)
    info = inspect_raw(cname)
    if info is None:
        return None
    state = info.get("State") or {}
    config = info.get("Config") or {}
    return {
        "id": info["Id"],
        "name": cname,
        "running": bool(state.get("Running")) and not state.get("Restarting"),
        "health": (state.get("Health") or {}).get("Status"),   # starting, healthy, unhealthy; None: no check
        **state_of(info),
        "image": config.get("Image"),
        "memory_limit": (info.get("HostConfig") or {}).get("Memory") or None,
        "labels": config.get("Labels") or {},
    }


def list_services() -> list[dict]:
    """This Berth's service containers, running or not: [{service, id, name, status, running, image}]."""
    with engine("Cannot list containers"):
        found = client().api.containers(
            all=True, filters={"label": [LABEL_SERVICE, f"{LABEL_INSTANCE}={instance_id()}"]})
    return [{
        "service": (c.get("Labels") or {}).get(LABEL_SERVICE),
        "id": c["Id"],
        "name": (c.get("Names") or ["/"])[0].lstrip("/"),
        "status": c.get("State"),
        "running": c.get("State") == "running",
        "image": c.get("Image"),
    } for c in found]


def memory_stats(container: str) -> dict | None:
    """{"used", "limit"} bytes of a running container (`container`: name or id), None when it is
    not running. "used" leaves out the page cache, as `docker stats` does. One sample, no wait."""
    with engine(f"Cannot read statistics of {container}"):
        try:
            stats = client().api.stats(container, stream=False, one_shot=True)
        except docker.errors.NotFound:
            return None
    memory = stats.get("memory_stats") or {}
    if "usage" not in memory:
        return None
    detail = memory.get("stats") or {}
    cache = detail.get("inactive_file", detail.get("total_inactive_file", detail.get("cache", 0)))
    return {"used": max(0, memory["usage"] - cache), "limit": memory.get("limit") or 0}


# --- exec ------------------------------------------------------------------------------------

def _stdin_chunks(stdin):
    if isinstance(stdin, (bytes, bytearray, memoryview)):
        view = memoryview(stdin)
        for start in range(0, len(view), CHUNK):
            yield view[start:start + CHUNK]
        return
    while True:
        chunk = stdin.read(CHUNK)
        if not chunk:
            return
        yield chunk


class _Tail:
    """The last `cap` bytes written."""

    def __init__(self, cap):
        self.cap, self.data = cap, bytearray()

    def write(self, chunk):
        self.data += chunk
        if len(self.data) > 2 * self.cap:
            del self.data[:-self.cap]

    def value(self):
        return bytes(self.data[-self.cap:])


def _exec_start(container, argv, stdin, env, user):
    api = client().api
    with engine(f"Cannot run {argv[0]} in {container}"):
        try:
            exec_id = api.exec_create(container, argv, stdin=stdin is not None, stdout=True, stderr=True,
                                      environment=env or None, user=user or "")["Id"]
        except docker.errors.NotFound:
            raise ContainerError(f"Cannot run {argv[0]} in {container}: no such container") from None
        except docker.errors.APIError as exc:
            if exc.status_code == 409:   # not running
                raise ContainerError(f"Cannot run {argv[0]} in {container}: it is not running") from None
            raise
        return exec_id, api.exec_start(exec_id, socket=True)


def _feeder(raw, stdin):
    """A thread streaming `stdin` into the exec's socket, then half-closing it (the program's EOF)."""
    def feed():
        try:
            for chunk in _stdin_chunks(stdin):
                raw.sendall(chunk)
        except OSError:
            pass    # the program exited without reading everything: its exit code tells
        finally:
            try:
                raw.shutdown(socket.SHUT_WR)
            except OSError:
                pass
    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    return writer


def _demultiplex(reader, stdout, other, what):
    """Copy the engine's framed stream (8-byte header: stream, size) to `stdout` / `other`."""
    while True:
        header = read_exact(reader, 8)
        if len(header) < 8:
            return
        stream, size = struct.unpack(">BxxxL", header)
        target = stdout if stream == 1 else other
        while size:
            chunk = reader.read(min(size, CHUNK))
            if not chunk:
                raise ContainerError(f"{what}: the engine closed the stream")
            size -= len(chunk)
            target.write(chunk)


def _exit_code(exec_id, what):
    api = client().api
    with engine(f"Cannot read the exit code of {what}"):
        for _ in range(50):          # the engine records the exit a moment after the stream ends
            code = api.exec_inspect(exec_id).get("ExitCode")
            if code is not None:
                return code
            time.sleep(0.1)
    return -1


def exec_run(container: str, argv: list[str], *, stdin: bytes | BinaryIO | None = None,
             stdout_to: BinaryIO | None = None, env: dict | None = None, user: str | None = None,
             timeout: float | None = 3600, output_cap: int = OUTPUT_CAP) -> tuple[int, bytes]:
    """Run `argv` in the running `container` (a name or id) and wait for it: (exit code, output).

    `stdin` (bytes or a binary file) is streamed to the program, then closed. Without `stdout_to`
    the output is stdout and stderr together (the last 4 MiB); with it, stdout is streamed into
    that file and the output returned is stderr only (its last `output_cap` bytes). `timeout`
    bounds each wait for data, not the whole run. Secrets go in `env` or `stdin`, never in `argv`."""
    what = f"{argv[0]} in {container}"
    exec_id, sock = _exec_start(container, argv, stdin, env, user)
    raw = getattr(sock, "_sock", sock)          # the socket itself, for shutdown(SHUT_WR)
    # http.client may have read past the response headers into its buffer: read through it.
    reader = getattr(getattr(getattr(getattr(sock, "_response", None), "raw", None), "_fp", None), "fp", None) or sock
    raw.settimeout(timeout)
    output = _Tail(output_cap if stdout_to is not None else max(output_cap, 4 * 1024 * 1024))
    writer = _feeder(raw, stdin) if stdin is not None else None
    try:
        _demultiplex(reader, stdout_to if stdout_to is not None else output, output, what)
    except (TimeoutError, socket.timeout):
        raise ContainerError(f"{what}: no output for {timeout} s") from None
    except OSError as exc:
        raise ContainerError(f"{what}: {exc}") from None
    finally:
        if writer:
            writer.join(timeout=5)
        try:
            sock.close()
        finally:
            raw.close()
    return _exit_code(exec_id, what), output.value()
