"""Host ports of app containers: which ones Berth's containers hold, and picking free ones.

A stopped container does not bind its port, yet the port is still its own (it binds it again on
start), so "free" means free on this host *and* claimed by no Berth container. Each container
records its host ports in a label at creation (labels cannot change afterwards), so finding them
is one list call; containers made before that label are inspected one by one.
"""
import socket
from collections.abc import Iterable

import docker.errors

from containers.engine import LABEL_HOST_PORTS, LABEL_MANAGED, ContainerError, client, engine

PUBLISH_IP = "127.0.0.1"
PORT_RANGE = range(1, 65536)


def check_port(port: object) -> int:
    """`port` as an int when it is a TCP/UDP port number (1-65535), else ValueError."""
    if isinstance(port, bool) or not isinstance(port, (int, str)) or not str(port).isdigit() \
            or int(port) not in PORT_RANGE:
        raise ValueError(f"{port!r} is not a port number (1-65535)")
    return int(port)


def label_value(host_ports: set[int]) -> str:
    return ",".join(str(p) for p in sorted(host_ports))


def _from_label(value):
    return {int(p) for p in value.split(",") if p.isdigit()}


def published(host_config: dict, proto: str) -> dict[int, int]:
    """{container port: host port} of one protocol from a container's configuration."""
    out = {}
    for key, bindings in (host_config.get("PortBindings") or {}).items():
        port, _, p = key.partition("/")
        for binding in bindings or ():
            if p == proto and str(binding.get("HostPort") or "").isdigit():
                out[int(port)] = int(binding["HostPort"])
    return out


def _bound_ports(host_config):
    """Host ports a container holds in its configuration (held even while it is stopped)."""
    ports = set()
    for bindings in (host_config.get("PortBindings") or {}).values():
        for binding in bindings or ():
            if str(binding.get("HostPort") or "").isdigit():
                ports.add(int(binding["HostPort"]))
    return ports


def reserved_ports() -> set[int]:
    """Host ports published by Berth's containers, running or not."""
    ports = set()
    with engine("Cannot list containers"):
        for c in client().api.containers(all=True, filters={"label": f"{LABEL_MANAGED}=true"}):
            label = (c.get("Labels") or {}).get(LABEL_HOST_PORTS)
            if label is not None:
                ports |= _from_label(label)
                continue
            try:
                info = client().api.inspect_container(c["Id"])
            except docker.errors.NotFound:
                continue        # removed while we looked
            ports |= _bound_ports(info.get("HostConfig") or {})
    return ports


def free_port(exclude: Iterable[int] = (), kind: int = socket.SOCK_STREAM, reserved: set[int] | None = None) -> int:
    """A port free on 127.0.0.1 now that no Berth container (even a stopped one, whose port is
    not bound while it is down) has claimed, and not in `exclude` (ports the caller knows of).
    `reserved` is reserved_ports() when the caller has it already."""
    taken = (reserved_ports() if reserved is None else reserved) | set(exclude)
    for _ in range(100):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((PUBLISH_IP, 0))
            port = s.getsockname()[1]
        if port not in taken:
            return port
    raise ContainerError("No free port found on 127.0.0.1")
