"""The Docker engine: the process's client, turning SDK failures into ContainerError, and the
names and labels by which Berth recognises its containers."""
import hashlib
import os
import re
import threading

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


def get(app_id: str) -> Container | None:
    """The app's container object, or None when there is none."""
    name = container_name(app_id)
    with engine(f"Cannot inspect container {name}"):
        try:
            return client().containers.get(name)
        except docker.errors.NotFound:
            return None


def must_get(app_id: str) -> Container:
    container = get(app_id)
    if container is None:
        raise ContainerError(f"Container {container_name(app_id)} does not exist")
    return container


def instance_id() -> str:
    """Which Berth (one data dir) a container belongs to, so several on one engine tell theirs apart."""
    return hashlib.sha256(os.path.realpath(config.get().data_dir).encode()).hexdigest()[:16]
