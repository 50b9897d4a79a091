"""The Docker engine: the process's client, turning SDK failures into ContainerError, and the
names and labels by which Berth recognises its containers."""
import hashlib
import os
import re
import threading
import time

import docker
import docker.errors
import requests.exceptions
from docker.models.containers import Container

from core import config, errors

LABEL_MANAGED = "berth.managed"
LABEL_APP_ID = "berth.app-id"
# The container port the app's HTTP is on: inspect() needs it to find the published host port
# again, and the container's own labels are the only record that survives a lost database.
LABEL_HTTP_PORT = "berth.http-port"
# Which Berth (one data dir) a container belongs to, so several on one engine tell theirs apart.
LABEL_INSTANCE = "berth.instance"
# The host ports a container publishes (comma separated), so ports.reserved_ports() reads one
# list of containers instead of inspecting each of them.
LABEL_HOST_PORTS = "berth.host-ports"

_APP_ID = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,120}$")


class ContainerError(errors.DependencyFailed):
    """The engine could not do what was asked; `message` is the one line for the app's error.

    A DependencyFailed (424) so that, should one escape into a handler (logs of an app while
    the engine is down), the client gets the engine's reason instead of a 500.
    """


_client = None
_client_key = None
_client_lock = threading.Lock()


def client() -> docker.DockerClient:
    """The process's Docker client for config.get().docker_host.

    Re-created after a fork (gunicorn workers) or a change of DOCKER_HOST, since a pooled
    connection must never be shared between processes.
    """
    global _client, _client_key
    key = (os.getpid(), config.get().docker_host)
    with _client_lock:
        if _client is None or _client_key != key:
            try:
                _client = docker.DockerClient(base_url=key[1], timeout=120)
            except docker.errors.DockerException as exc:
                raise ContainerError(f"Docker engine not reachable at {key[1]}: {reason(exc)}") from None
            _client_key = key
        return _client


def ping() -> bool:
    """True when the Docker engine answers."""
    try:
        return bool(client().ping())
    except (ContainerError, docker.errors.DockerException, requests.exceptions.RequestException):
        return False


def reason(exc: BaseException) -> str:
    """The engine's own words for a failure, without the SDK's URL noise."""
    if isinstance(exc, docker.errors.APIError):
        explanation = exc.explanation
        if isinstance(explanation, bytes):
            explanation = explanation.decode("utf-8", "replace")
        return (explanation or str(exc)).strip()
    return str(exc).strip() or type(exc).__name__


class engine:  # lower case: used as `with engine("Cannot ..."):`, like a function
    """Turns any SDK/transport failure into ContainerError("<what>: <reason>")."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None or isinstance(exc, ContainerError):
            return False
        if isinstance(exc, requests.exceptions.ConnectionError):
            raise ContainerError(f"{self.what}: Docker engine not reachable at "
                                 f"{config.get().docker_host}") from exc
        if isinstance(exc, (docker.errors.DockerException, requests.exceptions.RequestException)):
            raise ContainerError(f"{self.what}: {reason(exc)}") from exc
        return False


def container_name(app_id: str) -> str:
    if not isinstance(app_id, str) or not _APP_ID.fullmatch(app_id):
        raise ValueError(f"app id {app_id!r} cannot name a container")
    return f"berth-{app_id}"


def find(name: str) -> Container | None:
    """The container object of that name, or None when there is none."""
    with engine(f"Cannot inspect container {name}"):
        try:
            return client().containers.get(name)
        except docker.errors.NotFound:
            return None


def get(app_id: str) -> Container | None:
    """The app's container object, or None when there is none."""
    return find(container_name(app_id))


def must_get(app_id: str) -> Container:
    container = get(app_id)
    if container is None:
        raise ContainerError(f"Container {container_name(app_id)} does not exist")
    return container


def instance_id() -> str:
    """Which Berth (one data dir) a container belongs to, so several on one engine tell theirs apart."""
    return hashlib.sha256(os.path.realpath(config.get().data_dir).encode()).hexdigest()[:16]


# --- shared by app and service containers ----------------------------------------------------------

STOP_TIMEOUT = 10          # seconds between SIGTERM and SIGKILL on stop/restart


def stop_container(name: str, timeout: float = STOP_TIMEOUT) -> None:
    """Stop a container by name (SIGTERM, SIGKILL after `timeout` s). Missing or stopped is fine."""
    container = find(name)
    if container is None:
        return
    with engine(f"Cannot stop container {name}"):
        try:
            container.stop(timeout=timeout)
        except docker.errors.NotFound:
            pass


def remove_container(name: str) -> None:
    """Remove a container by name (running or not, with its anonymous volumes). Missing is fine;
    while another removal of it is under way (409) wait for that one, up to 30 s."""
    deadline = time.monotonic() + 30
    while True:
        with engine(f"Cannot remove container {name}"):
            try:
                client().api.remove_container(name, force=True, v=True)
                return
            except docker.errors.NotFound:
                return
            except docker.errors.APIError as exc:
                if exc.status_code != 409 or time.monotonic() > deadline:
                    raise
        time.sleep(0.1)


def remove_quietly(container_id: str) -> None:
    """Remove a container that failed to start; the start's own error is the one that matters."""
    try:
        client().api.remove_container(container_id, force=True)
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        pass


def check_memory_limit(memory_limit: int) -> None:
    """A memory limit must be a positive number of bytes (not a bool)."""
    if isinstance(memory_limit, bool) or not isinstance(memory_limit, int) or memory_limit <= 0:
        raise ValueError("memory_limit must be a positive number of bytes")


def inspect_raw(name: str) -> dict | None:
    """The engine's inspection of the container of that name, or None when there is none."""
    with engine(f"Cannot inspect container {name}"):
        try:
            return client().api.inspect_container(name)
        except docker.errors.NotFound:
            return None


def state_of(info: dict) -> dict:
    """The fields of an inspected container's state that app and service containers both report."""
    state = info.get("State") or {}
    return {
        "status": state.get("Status"),       # created, running, restarting, paused, exited, dead
        "restart_count": info.get("RestartCount", 0),
        "exit_code": state.get("ExitCode"),
        "oom_killed": bool(state.get("OOMKilled")),
        "error": state.get("Error") or None,
        "started_at": state.get("StartedAt"),
        "finished_at": state.get("FinishedAt"),
    }


def data_root() -> str | None:
    """Where the engine keeps images and containers (`docker info` DockerRootDir), None when the
    engine cannot be asked."""
    try:
        return client().info().get("DockerRootDir") or None
    except (ContainerError, docker.errors.DockerException, requests.exceptions.RequestException):
        return None
