"""The app's container: creating it (ports, data folder, limits, hardening), its lifecycle, and
its state as the engine reports it.

The data folder is bind-mounted read-write at /app/data into a container that runs as root
without a user namespace, so whatever the app creates there is root-owned on the host. Other
host users must not reach it (a setuid binary or device node planted there would be theirs to
use, security review finding 7): <data>/apps and <data>/apps/<id> are 0700, and the container
may not create device nodes (MKNOD), set file capabilities (SETFCAP) or gain privileges
through setuid binaries (no-new-privileges).
"""
import os
import socket

import docker.errors
import docker.types

from containers import deploy_switch
from containers import ports as host_ports
from containers.engine import (
    LABEL_APP_ID,
    LABEL_HOST_PORTS,
    LABEL_HTTP_PORT,
    LABEL_MANAGED,
    STOP_TIMEOUT,
    ContainerError,
    check_memory_limit,
    client,
    container_name,
    engine,
    inspect_raw,
    must_get,
    reason,
    remove_container,
    remove_quietly,
    state_of,
    stop_container,
)
from core import data_paths

DATA_MOUNT = "/app/data"
# A log file per container, capped: app logs must not fill the disk of a small server.
LOG_CONFIG = {"max-size": "10m", "max-file": "3"}
# Capabilities Docker grants by default that an app never needs and that would let it plant
# device nodes or file capabilities in its data folder (finding 7).
CAP_DROP = ["MKNOD", "SETFCAP"]
SECURITY_OPT = ["no-new-privileges"]
PRIVATE = 0o700


def _make_private(path):
    os.makedirs(path, mode=PRIVATE, exist_ok=True)
    os.chmod(path, PRIVATE)     # an existing folder keeps the mode it was made with otherwise


def private_data_dir(data_dir: str) -> None:
    """Create `data_dir`; when it lies under <data>/apps, make <data>/apps and the app's own
    folder (<data>/apps/<id>) 0700 on the way. The data folder itself keeps its mode: only the
    container's processes use it, through the mount."""
    root = os.path.normpath(data_paths.apps_root())
    target = os.path.normpath(data_dir)
    if os.path.commonpath([root, target]) == root and target != root:
        _make_private(root)
        _make_private(os.path.join(root, os.path.relpath(target, root).split(os.sep)[0]))
    os.makedirs(target, exist_ok=True)


def protect_app_folders() -> None:
    """Make <data>/apps and every <data>/apps/<id> 0700 (folders made by older versions were 0755)."""
    root = data_paths.apps_root()
    if not os.path.isdir(root):
        return
    _make_private(root)
    for entry in os.scandir(root):
        if entry.is_dir(follow_symlinks=False):
            os.chmod(entry.path, PRIVATE)


# --- creating --------------------------------------------------------------------------------

def _port_in_use(exc):
    text = reason(exc).lower()
    return "port is already allocated" in text or "address already in use" in text


class _PortPicker:
    """Fills in the host ports the caller left to Berth (None), never twice the same one; the
    ports Berth's containers hold are asked from the engine once."""

    def __init__(self):
        self.reserved = None
        self.chosen = set()

    def __call__(self, port, kind=socket.SOCK_STREAM):
        if port is not None:
            return host_ports.check_port(port)
        if self.reserved is None:
            self.reserved = host_ports.reserved_ports()
        port = host_ports.free_port(exclude=self.chosen, kind=kind, reserved=self.reserved)
        self.chosen.add(port)
        return port


def create_and_start(app_id: str, image: str, *, env: dict | None = None, memory_limit: int | None = None,
                     data_dir: str, http_port: int, host_port: int | None = None,
                     tcp_ports: dict | None = None, udp_ports: dict | None = None, labels: dict | None = None,
                     restart_policy: str | None = "unless-stopped", ports_ip: str = host_ports.PUBLISH_IP,
                     command: list[str] | None = None, network: str | None = None,
                     mounts: list[tuple[str, str, bool]] | None = None,
                     extra_hosts: dict[str, str] | None = None, cpu_shares: int | None = None,
                     name: str | None = None) -> dict:
    """(Re)create the app's container and start it.

    Any existing container of the app is removed first. `data_dir` (created if missing, see
    private_data_dir) is bound at /app/data. The app's `http_port` is published on
    127.0.0.1:`host_port` (a free port Berth picks when None); `tcp_ports`/`udp_ports` map
    container port -> host port (None: pick one) on `ports_ip`. `command` (a list) replaces the
    image's entrypoint and command (debug mode). `network` (the app network, see
    service_containers.app_network) is the network the container joins instead of the default
    bridge, where the addon services answer by name. `mounts`: more (host path, container path,
    read_only) binds the app's addons ask for (the tls addon's /etc/certs). `cpu_shares`: the container's
    relative CPU weight. `name`: another container name than the app's own (a deploy starts the
    new version beside the running one, containers.deploy_switch); only that name is replaced. Returns {"id", "name",
    "host_port", "tcp_ports", "udp_ports"} with the ports actually published.
    """
    name = name or container_name(app_id)
    if not os.path.isabs(data_dir):
        raise ValueError(f"data_dir must be an absolute path, not {data_dir!r}")
    http_port = host_ports.check_port(http_port)
    tcp_ports = {host_ports.check_port(c): h for c, h in (tcp_ports or {}).items()}
    udp_ports = {host_ports.check_port(c): h for c, h in (udp_ports or {}).items()}
    private_data_dir(data_dir)
    remove_container(name)
    # Ports we chose ourselves may be taken between choosing and binding; those are re-chosen.
    attempts = 3 if None in (host_port, *tcp_ports.values(), *udp_ports.values()) else 1
    for attempt in range(attempts):
        pick = _PortPicker()
        http_host = pick(host_port)
        tcp = {c: pick(h) for c, h in tcp_ports.items()}
        udp = {c: pick(h, socket.SOCK_DGRAM) for c, h in udp_ports.items()}
        ports = {f"{http_port}/tcp": (host_ports.PUBLISH_IP, http_host)}
        ports.update({f"{c}/tcp": (ports_ip, h) for c, h in tcp.items() if c != http_port})
        ports.update({f"{c}/udp": (ports_ip, h) for c, h in udp.items()})
        held = {http_host, *(h for c, h in tcp.items() if c != http_port), *udp.values()}
        all_labels = dict(labels or {})
        all_labels.update({LABEL_MANAGED: "true", LABEL_APP_ID: app_id, LABEL_HTTP_PORT: str(http_port),
                           LABEL_HOST_PORTS: host_ports.label_value(held)})
        with engine(f"Cannot create container {name}"):
            container = client().containers.create(
                image,
                entrypoint=command[:1] if command else None,
                command=command[1:] if command else None,
                name=name,
                environment=[f"{k}={v}" for k, v in (env or {}).items()],
                labels=all_labels,
                mounts=[docker.types.Mount(DATA_MOUNT, data_dir, type="bind", read_only=False)]
                + [docker.types.Mount(target, source, type="bind", read_only=ro)
                   for source, target, ro in mounts or ()],
                ports=ports,
                mem_limit=memory_limit or None,
                # No swap beyond the limit: the app's memory limit is what it gets.
                memswap_limit=memory_limit or None,
                cpu_shares=cpu_shares or None,     # relative CPU weight (Docker's default 1024 when unset)
                restart_policy={"Name": restart_policy} if restart_policy else None,
                log_config=docker.types.LogConfig(type="json-file", config=LOG_CONFIG),
                stop_signal="SIGTERM",
                cap_drop=CAP_DROP,
                security_opt=SECURITY_OPT,
                network=network,
                extra_hosts=extra_hosts or None,   # {name: address} added to the container's /etc/hosts
            )
        try:
            with engine(f"Cannot start container {name}"):
                container.start()
        except ContainerError as exc:
            # A container that never started is of no use and would be mistaken for the app's.
            remove_quietly(container.id)
            if attempt + 1 < attempts and _port_in_use(exc.__cause__):
                continue
            raise
        return {"id": container.id, "name": name, "host_port": http_host, "tcp_ports": tcp, "udp_ports": udp}


# --- lifecycle -------------------------------------------------------------------------------

def remove(app_id: str) -> None:
    """Remove the app's container (running or not), and the second container a deploy interrupted
    by a crash may have left beside it (containers.deploy_switch). A missing container is fine.
    Callers hold the app's task, so no deploy is running."""
    for name in (container_name(app_id), deploy_switch.next_name(app_id), deploy_switch.old_name(app_id)):
        remove_container(name)


def stop(app_id: str, timeout: float = STOP_TIMEOUT) -> None:
    """Stop the app's container (SIGTERM, SIGKILL after `timeout` s). Missing or stopped is fine.
    A stopped container stays stopped: Docker's restart policy ignores containers stopped this way."""
    stop_container(container_name(app_id), timeout)


def start(app_id: str) -> None:
    """Start the app's stopped container (running already is fine). Missing: ContainerError."""
    container = must_get(app_id)
    with engine(f"Cannot start container {container.name}"):
        container.start()


def restart(app_id: str, timeout: float = STOP_TIMEOUT) -> None:
    """Restart the app's container (starts it when stopped). Missing: ContainerError."""
    container = must_get(app_id)
    with engine(f"Cannot restart container {container.name}"):
        container.restart(timeout=timeout)


def update_memory(app_id: str, memory_limit: int) -> None:
    """Change the running container's memory limit in place (bytes, > 0)."""
    check_memory_limit(memory_limit)
    container = must_get(app_id)
    with engine(f"Cannot update memory limit of {container.name}"):
        container.update(mem_limit=memory_limit, memswap_limit=memory_limit)


# --- state -----------------------------------------------------------------------------------

def inspect(app_id: str) -> dict | None:
    """The app container's state, or None when it has none:
    {exists, id, running, status, restart_count, exit_code, oom_killed, error, started_at,
     finished_at, pid, host_port, http_port, tcp_ports, udp_ports, image, memory_limit, labels}."""
    info = inspect_raw(container_name(app_id))
    if info is None:
        return None
    state = info.get("State") or {}
    host_config = info.get("HostConfig") or {}
    labels = (info.get("Config") or {}).get("Labels") or {}
    tcp = host_ports.published(host_config, "tcp")
    http_port = int(labels[LABEL_HTTP_PORT]) if labels.get(LABEL_HTTP_PORT, "").isdigit() else None
    return {
        "exists": True,
        "id": info["Id"],
        "running": bool(state.get("Running")),
        **state_of(info),
        "pid": state.get("Pid") or None,
        "http_port": http_port,
        "host_port": tcp.get(http_port),
        "tcp_ports": {c: h for c, h in tcp.items() if c != http_port},
        "udp_ports": host_ports.published(host_config, "udp"),
        "image": (info.get("Config") or {}).get("Image"),
        "memory_limit": host_config.get("Memory") or None,
        "labels": labels,
    }


def list_managed() -> list[dict]:
    """Berth's containers (label berth.managed=true), running or not:
    [{app_id, id, name, status, running, image, labels}]."""
    with engine("Cannot list containers"):
        found = client().api.containers(all=True, filters={"label": f"{LABEL_MANAGED}=true"})
    return [{
        "app_id": (c.get("Labels") or {}).get(LABEL_APP_ID),
        "id": c["Id"],
        "name": (c.get("Names") or ["/"])[0].lstrip("/"),
        "status": c.get("State"),
        "running": c.get("State") == "running",
        "image": c.get("Image"),
        "labels": c.get("Labels") or {},
    } for c in found]


def usage_counters(app_id: str) -> dict | None:
    """Cumulative counters of the app's running container from one engine sample (one-shot, no
    wait), None when it is not running: {cpu_ns, cpus, memory, net_rx, net_tx, disk_read,
    disk_write}. The graphs collector turns two samples into rates; memory leaves out the page
    cache, as `docker stats` does."""
    with engine(f"Cannot read statistics of {container_name(app_id)}"):
        try:
            stats = client().api.stats(container_name(app_id), stream=False, one_shot=True)
        except docker.errors.NotFound:
            return None
    memory = stats.get("memory_stats") or {}
    if "usage" not in memory:  # not running: the engine answers an empty sample
        return None
    detail = memory.get("stats") or {}
    cache = detail.get("inactive_file", detail.get("total_inactive_file", detail.get("cache", 0)))
    cpu = stats.get("cpu_stats") or {}
    networks = (stats.get("networks") or {}).values()
    blkio = (stats.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
    return {
        "cpu_ns": (cpu.get("cpu_usage") or {}).get("total_usage", 0),
        "cpus": cpu.get("online_cpus") or 0,
        "memory": max(0, memory["usage"] - cache),
        "net_rx": sum(n.get("rx_bytes", 0) for n in networks),
        "net_tx": sum(n.get("tx_bytes", 0) for n in networks),
        "disk_read": sum(e.get("value", 0) for e in blkio if str(e.get("op", "")).lower() == "read"),
        "disk_write": sum(e.get("value", 0) for e in blkio if str(e.get("op", "")).lower() == "write"),
    }
