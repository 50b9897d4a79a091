"""Images of the addon services: a pull that gives up quickly (an offline server must not wait
minutes per attempt), and an image made from a root filesystem tar stream (`docker import`)
plus per-service configurations on top of it (a commit of a never-started container, which
adds no layer)."""
import io
import tarfile
from collections.abc import Callable, Iterable

import docker
import docker.errors
import docker.utils
import requests.exceptions

from containers.engine import ContainerError, client, engine, reason
from containers.images import _PullFailed, _PullProgress, image_exists
from core import config


def _client(timeout):
    try:
        return docker.DockerClient(base_url=config.get().docker_host, timeout=timeout)
    except docker.errors.DockerException as exc:
        raise ContainerError(f"Docker engine not reachable: {reason(exc)}") from None


def try_pull(image: str, log: Callable[[str], None], timeout: float = 30) -> None:
    """Pull `image`, waiting at most `timeout` s for each answer of the engine.
    Raises ContainerError("Cannot pull image ...: <why>")."""
    repo, tag = docker.utils.parse_repository_tag(image)
    log(f"Pulling image {image}")
    progress = _PullProgress(log)
    quick = _client(timeout)
    try:
        with engine(f"Cannot pull image {image}"):
            for event in quick.api.pull(repo, tag=tag or "latest", stream=True, decode=True):
                progress.feed(event)
    except _PullFailed as exc:
        raise ContainerError(f"Cannot pull image {image}: {exc}") from None
    except (requests.exceptions.Timeout, TimeoutError):
        raise ContainerError(f"Cannot pull image {image}: no answer within {timeout} s") from None
    finally:
        quick.close()
    if not image_exists(image):
        raise ContainerError(f"Cannot pull image {image}: the engine reported success but has no such image")
    log(f"Pulled image {image}")


def import_rootfs(chunks: Iterable[bytes], repository: str, tag: str, changes: list[str] | None = None) -> str:
    """Import a root filesystem tar, given as an iterable of byte chunks (streamed with chunked
    transfer encoding, never held whole), as image `repository:tag`. Returns the reference."""
    slow = _client(1800)
    try:
        with engine(f"Cannot import image {repository}:{tag}"):
            result = slow.api.import_image(src=chunks, repository=repository, tag=tag, changes=changes,
                                           stream_src=True)
    finally:
        slow.close()
    if "error" in str(result).lower() and not image_exists(f"{repository}:{tag}"):
        raise ContainerError(f"Cannot import image {repository}:{tag}: {str(result)[-500:]}")
    return f"{repository}:{tag}"


def _tar(files):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, (data, mode) in sorted(files.items()):
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def derive_image(base: str, repository: str, tag: str, changes: list[str],
                 files: dict[str, tuple[bytes, int]] | None = None) -> str:
    """Image `repository:tag` = `base` with Dockerfile-style `changes` (ENTRYPOINT, CMD, ENV,
    EXPOSE, WORKDIR, USER) applied and small `files` ({path: (content, mode)}) added in one thin
    layer (none without files). Returns the reference."""
    api = client().api
    with engine(f"Cannot make image {repository}:{tag}"):
        created = api.create_container(base, command=["true"], labels={})
        try:
            if files:
                api.put_archive(created["Id"], "/", _tar(files))
            api.commit(created["Id"], repository=repository, tag=tag, changes=changes)
        finally:
            api.remove_container(created["Id"], force=True)
    return f"{repository}:{tag}"


def image_tags(repository: str) -> list[str]:
    """The local tags ("repository:tag") of `repository`."""
    with engine(f"Cannot list images of {repository}"):
        found = client().api.images(name=repository)
    return sorted(t for image in found for t in (image.get("RepoTags") or []) if t.startswith(repository + ":"))


def remove_image(image: str) -> None:
    """Remove an image (tag); missing is fine."""
    with engine(f"Cannot remove image {image}"):
        try:
            client().api.remove_image(image)
        except docker.errors.ImageNotFound:
            pass
