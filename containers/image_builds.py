"""Images built from source for deployments (deployments/): `docker build` through the engine's
low-level API, the build output handed line by line to the task log.

Every image built here carries `berth.build=true`, `berth.app-id`, `berth.deployment` and this
instance's label, so the image hygiene removes only what Berth built (and only its own). The
engine's classic builder keeps a local layer cache; `cache_from` names the app's previous build
so its layers are reused even after a prune of dangling images.

Labels and the build cache: the engine's classic builder turns the API's `labels` into one LABEL
step per label, in the order of their names, at the end of the Dockerfile. A label that changes
with every deployment misses the cache, and so does every step after it: `berth.deployment` sorts
before `berth.instance`, which cost two uncommitted steps (a container created and committed
each) on every rebuild of an unchanged source. So the source is built with the labels that stay
the same for the app (app id, instance: all cached when nothing changed), and a second build
`FROM` that image adds `berth.build` (cached too) and `berth.deployment`: one step to commit.
The intermediate image carries no `berth.build` label, so the image hygiene never lists it; the
engine removes it with the labelled image built on it.

The time limit: the build's HTTP answer is read with a client whose read timeout is the limit
(a step silent for that long ends it) and the elapsed time is checked at every line (a chatty
build ends too). Giving up closes the connection, which makes the engine cancel the build.
"""
import io
import re
import tarfile
import time
from collections.abc import Callable

import docker
import docker.errors
import requests.exceptions
import urllib3.exceptions

from containers.engine import LABEL_APP_ID, LABEL_INSTANCE, ContainerError, client, engine, instance_id, reason
from containers.images import image_exists
from core import config

LABEL_BUILD = "berth.build"
LABEL_DEPLOYMENT = "berth.deployment"
_RUNNING_IN = re.compile(r"^\s*---> Running in ([0-9a-f]{12,64})\s*$")
_BUILT = re.compile(r"^Successfully built ([0-9a-f]{12,64})\s*$")


class BuildFailed(ContainerError):
    """The build itself failed (a step exited non-zero, a bad Dockerfile, the time limit)."""


class _Lines:
    """The engine's `stream` chunks joined and split into whole lines for the log."""

    def __init__(self, log):
        self.log, self.partial = log, ""
        self.tail: list[str] = []
        self.step_container = None      # the container of the step running now (" ---> Running in <id>")

    def feed(self, text):
        lines = (self.partial + text).split("\n")
        self.partial = lines.pop()
        for line in lines:
            self.emit(line)

    def emit(self, line):
        line = line.rstrip("\r")
        match = _RUNNING_IN.match(line)
        if match:
            self.step_container = match.group(1)
        if line.strip():
            self.log(line)
            self.tail = (self.tail + [line])[-5:]

    def flush(self):
        if self.partial:
            self.emit(self.partial)
            self.partial = ""


def build_labels(app_id: str, deployment_id: int | str) -> dict[str, str]:
    return {LABEL_BUILD: "true", LABEL_APP_ID: app_id, LABEL_DEPLOYMENT: str(deployment_id),
            LABEL_INSTANCE: instance_id()}


def _stage_labels(app_id, deployment_id):
    """(labels of the source's build, labels added on top of it): see the module docstring."""
    labels = build_labels(app_id, deployment_id)
    final = {name: labels.pop(name) for name in (LABEL_BUILD, LABEL_DEPLOYMENT)}
    return labels, final


def _label_context(image_id):
    """A build context of one Dockerfile, `FROM <image id>`, as an uncompressed tar."""
    dockerfile = f"FROM {image_id}\n".encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size, info.mode, info.mtime = len(dockerfile), 0o644, 0
        tar.addfile(info, io.BytesIO(dockerfile))
    out.seek(0)
    return out


def build(context_dir: str, tag: str, *, app_id: str, deployment_id: int | str,
          build_args: dict[str, str] | None = None, cache_from: list[str] | None = None,
          timeout: float | None = None, log: Callable[[str], None] = lambda line: None) -> str:
    """Build the Dockerfile in `context_dir` as `tag` (labelled, see the module docstring) and
    return the image id. `cache_from`: earlier images whose layers may be reused (missing ones
    are left out). Raises BuildFailed with the build's own last lines, ContainerError when the
    engine cannot be reached."""
    limit = timeout or config.get().deploy_build_timeout
    cache = [image for image in cache_from or () if image_exists(image)]
    source_labels, final_labels = _stage_labels(app_id, deployment_id)
    try:
        api = docker.APIClient(base_url=config.get().docker_host, timeout=limit)
    except docker.errors.DockerException as exc:
        raise ContainerError(f"Docker engine not reachable: {reason(exc)}") from None
    lines = _Lines(log)
    started = time.monotonic()
    try:
        source = _run(api, lines, started, limit, tag, path=context_dir, buildargs=build_args or None,
                      cache_from=cache or None, labels=source_labels)
        return _run(api, lines, started, limit, tag, fileobj=_label_context(source), custom_context=True,
                    tag=tag, labels=final_labels)
    finally:
        api.close()


def _run(api, lines, started, limit, what, **options):
    """One `docker build` through `api`, its output to `lines`; the image id."""
    image_id = None
    try:
        with engine(f"Cannot build image {what}"):
            stream = api.build(rm=True, forcerm=True, pull=False, decode=True, timeout=limit, **options)
            for event in stream:
                if "stream" in event:
                    lines.feed(event["stream"])
                elif "error" in event:
                    lines.flush()
                    detail = (event.get("errorDetail") or {}).get("message") or event["error"]
                    raise BuildFailed(f"Build failed: {detail.strip()}")
                elif isinstance(event.get("aux"), dict) and event["aux"].get("ID"):
                    image_id = event["aux"]["ID"]
                elif event.get("status"):
                    lines.emit(str(event["status"]))   # base image pulls the Dockerfile asks for
                if time.monotonic() - started > limit:
                    raise BuildFailed(f"Build took longer than {limit} s")
    except (requests.exceptions.Timeout, urllib3.exceptions.TimeoutError, TimeoutError):
        _stop_step(lines.step_container)
        raise BuildFailed(f"Build took longer than {limit} s (no output for that long)") from None
    except BuildFailed as exc:
        if "longer than" in exc.message:
            _stop_step(lines.step_container)
        raise
    except ContainerError as exc:
        if isinstance(exc, BuildFailed) or not isinstance(exc.__cause__, docker.errors.APIError):
            raise
        # the engine refused the build itself (a Dockerfile it cannot parse, a bad context)
        raise BuildFailed(f"Build failed: {reason(exc.__cause__)}") from None
    lines.flush()
    if image_id is None:   # engines before API 1.30 do not send the id as `aux`
        built = [m.group(1) for m in map(_BUILT.match, lines.tail) if m]
        image_id = built[-1] if built else (image_info(options["tag"]) or {}).get("Id") if options.get("tag") else None
    if image_id is None:
        raise BuildFailed("Build failed: the engine reported no image" + (
            f" (last output: {' | '.join(lines.tail)})" if lines.tail else ""))
    return image_id


def _stop_step(container_id):
    """The engine goes on with a build whose client left; removing the container of the step that
    runs makes that step, and so the build, fail (nothing gets tagged)."""
    if not container_id:
        return
    try:
        client().api.remove_container(container_id, force=True)
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        pass        # the step ended meanwhile


def image_info(image: str) -> dict | None:
    """The engine's inspection of a local image, None when there is no such image."""
    with engine(f"Cannot inspect image {image}"):
        try:
            return client().api.inspect_image(image)
        except docker.errors.ImageNotFound:
            return None


def image_labels(image: str) -> dict[str, str] | None:
    """The labels of a local image, None when there is no such image."""
    info = image_info(image)
    return None if info is None else (info.get("Config") or {}).get("Labels") or {}
