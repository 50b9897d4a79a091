"""Private registry credentials at the engine: checking them by a login, and telling which
registry an image reference is pulled from (so stored credentials go only to their registry).

The login goes through a throw-away API client: the SDK keeps the credentials of a successful
login in the client object, and the process's shared client (containers.engine.client) must not
start sending them along with unrelated requests. Pulls pass the credentials explicitly
(containers.images.ensure_image(auth_config=...)).
"""
import docker
import docker.auth
import docker.errors
import docker.utils
import requests.exceptions

from containers.engine import ContainerError, reason
from core import config
from core.errors import BadRequest

DOCKER_HUB = "docker.io"
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
LOGIN_TIMEOUT = 30  # seconds: the engine contacts the registry while we wait


class RegistryLoginRefused(BadRequest):
    """The registry refused the username and password (400: the request's credentials are wrong)."""


def normalise_address(address: str) -> str:
    """`https://Registry.example:5000/v2/` -> `registry.example:5000`; Docker Hub's names -> docker.io."""
    host = address.strip().lower()
    for scheme in ("https://", "http://"):
        if host.startswith(scheme):
            host = host[len(scheme):]
    host = host.split("/", 1)[0]
    return DOCKER_HUB if host in _HUB_ALIASES else host


def registry_of(image: str) -> str:
    """The registry an image reference is pulled from, normalised like normalise_address."""
    repo, _ = docker.utils.parse_repository_tag(image)
    registry, _ = docker.auth.resolve_repository_name(repo)
    return normalise_address(registry)


def auth_config(username: str, password: str, server_address: str) -> dict:
    """The SDK's auth_config for a pull from `server_address`."""
    return {"username": username, "password": password, "serveraddress": server_address}


def login(server_address: str, username: str, password: str) -> None:
    """Ask the engine to log in to the registry with these credentials. Raises RegistryLoginRefused
    when the registry refuses them, ContainerError (424) when the engine or registry cannot be reached."""
    try:
        api = docker.APIClient(base_url=config.get().docker_host, timeout=LOGIN_TIMEOUT)
    except docker.errors.DockerException as exc:
        raise ContainerError(f"Docker engine not reachable: {reason(exc)}") from None
    try:
        api.login(username=username, password=password, registry=server_address, reauth=True)
    except docker.errors.APIError as exc:
        message = reason(exc)
        if exc.status_code == 401 or "unauthorized" in message.lower() or "incorrect username" in message.lower():
            raise RegistryLoginRefused(f"The registry {server_address} refused the login: {message}") from None
        raise ContainerError(f"Cannot log in to the registry {server_address}: {message}") from None
    except (requests.exceptions.RequestException, docker.errors.DockerException) as exc:
        raise ContainerError(f"Cannot log in to the registry {server_address}: {reason(exc)}") from None
    finally:
        api.close()
