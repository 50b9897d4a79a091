"""App images: a local image is used as is, anything else is pulled, with the engine's chatty
progress stream condensed into a few lines for the task log."""
import time
from collections.abc import Callable

import docker.errors
import docker.utils

from containers.engine import ContainerError, client, engine

# Pull progress: at most one "N of M downloaded" line this often, besides per-layer completions.
PROGRESS_EVERY = 3.0


def _image_ref(image):
    """(repository, tag-or-digest) for a pull; a bare name means :latest, as `docker pull` does."""
    repo, tag = docker.utils.parse_repository_tag(image)
    return repo, tag or "latest"


def _mb(n):
    return f"{n / 1e6:.1f} MB"


class _PullFailed(Exception):
    pass


class _PullProgress:
    """Condenses the engine's pull event stream (several events per layer per 512 KB) into a few
    lines: the non-layer statuses, one line per finished layer and a throttled byte total."""

    def __init__(self, log):
        self.log = log
        self.layers = {}        # layer id -> (current, total) bytes downloading
        self.done = set()
        self.last_progress = 0.0

    def feed(self, event):
        if "error" in event:
            detail = event.get("errorDetail") or {}
            raise _PullFailed(detail.get("message") or event["error"])
        status = event.get("status", "")
        layer = event.get("id")
        if not layer or status.startswith(("Pulling from", "Digest:", "Status:")):
            if status:
                self.log(status)    # "Pulling from <repo>" (its id is the tag), "Digest: ...", "Status: ..."
            return
        if status in ("Pull complete", "Already exists"):
            self.done.add(layer)
            self.layers.setdefault(layer, (0, 0))
            self.log(f"Layer {layer}: {status.lower()} ({len(self.done)}/{len(self.layers)} layers)")
        elif status == "Downloading":
            detail = event.get("progressDetail") or {}
            self.layers[layer] = (detail.get("current", 0), detail.get("total", 0))
            now = time.monotonic()
            if now - self.last_progress >= PROGRESS_EVERY:
                self.last_progress = now
                current = sum(c for c, _ in self.layers.values())
                total = sum(t for _, t in self.layers.values())
                self.log(f"Downloading: {_mb(current)} of {_mb(total)} "
                         f"({len(self.done)}/{len(self.layers)} layers done)")
        else:
            # "Pulling fs layer", "Waiting", "Verifying Checksum", "Extracting", ...: only counted.
            self.layers.setdefault(layer, (0, 0))


def image_exists(image: str) -> bool:
    with engine(f"Cannot inspect image {image}"):
        try:
            client().images.get(image)
            return True
        except docker.errors.ImageNotFound:
            return False


def ensure_image(image: str, log: Callable[[str], None] = lambda line: None,
                 auth_config: dict | None = None) -> None:
    """Make `image` available locally: a local image is used as is, anything else is pulled with
    condensed progress lines sent to `log(line)`, with `auth_config` (a private registry's
    credentials, containers.registry_auth) when given. Raises ContainerError("Cannot pull image ...")."""
    if image_exists(image):
        log(f"Using local image {image}")
        return
    repo, tag = _image_ref(image)
    log(f"Pulling image {image}")
    progress = _PullProgress(log)
    try:
        with engine(f"Cannot pull image {image}"):
            for event in client().api.pull(repo, tag=tag, stream=True, decode=True,
                                              auth_config=auth_config):
                progress.feed(event)
    except _PullFailed as exc:
        raise ContainerError(f"Cannot pull image {image}: {exc}") from None
    if not image_exists(image):
        raise ContainerError(f"Cannot pull image {image}: the engine reported success but has no such image")
    log(f"Pulled image {image}")
