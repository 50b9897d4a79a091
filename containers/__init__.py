"""App containers on the Docker engine: images, lifecycle, state, logs and the health wait.

The apps task bodies call these small functions; everything here talks to the engine named by
DOCKER_HOST (config.get().docker_host) through the Docker SDK. One container per app, named
`berth-<app_id>` and labelled `berth.managed=true` + `berth.app-id=<app_id>`, so Berth can find
its containers again after a restart without trusting its own database.

Every engine failure surfaces as ContainerError with the engine's own explanation, so a task can
put one readable line into the app's `error`.
"""
import asyncio
import datetime
import http.client
import hashlib
import os
import re
import socket
import threading
import time

import docker
import docker.errors
import docker.types
import docker.utils
import requests.exceptions

from core import config
from core import errors

LABEL_MANAGED = "berth.managed"
LABEL_APP_ID = "berth.app-id"
# The container port the app's HTTP is on: inspect() needs it to find the published host port
# again, and the container's own labels are the only record that survives a lost database.
LABEL_HTTP_PORT = "berth.http-port"
DATA_MOUNT = "/app/data"
PUBLISH_IP = "127.0.0.1"
STOP_TIMEOUT = 10          # seconds between SIGTERM and SIGKILL on stop/restart
# A log file per container, capped: app logs must not fill the disk of a small server.
LOG_CONFIG = {"max-size": "10m", "max-file": "3"}
# Pull progress: at most one "N of M downloaded" line this often, besides per-layer completions.
PROGRESS_EVERY = 3.0

_APP_ID = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,120}$")


class ContainerError(errors.DependencyFailed):
    """The engine could not do what was asked; `message` is the one line for the app's error.

    A DependencyFailed (424) so that, should one escape into a handler (logs of an app while
    the engine is down), the client gets the engine's reason instead of a 500.
    """


# --- the client ------------------------------------------------------------------------------

_client = None
_client_key = None
_client_lock = threading.Lock()


def client():
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
                raise ContainerError(f"Docker engine not reachable at {key[1]}: {_reason(exc)}") from None
            _client_key = key
        return _client


def ping():
    """True when the Docker engine answers."""
    try:
        return bool(client().ping())
    except (ContainerError, docker.errors.DockerException, requests.exceptions.RequestException):
        return False


def _reason(exc):
    """The engine's own words for a failure, without the SDK's URL noise."""
    if isinstance(exc, docker.errors.APIError):
        explanation = exc.explanation
        if isinstance(explanation, bytes):
            explanation = explanation.decode("utf-8", "replace")
        return (explanation or str(exc)).strip()
    return str(exc).strip() or type(exc).__name__


class _engine:
    """Turns any SDK/transport failure into ContainerError("<what>: <reason>")."""

    def __init__(self, what):
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
            raise ContainerError(f"{self.what}: {_reason(exc)}") from exc
        return False


def container_name(app_id):
    if not isinstance(app_id, str) or not _APP_ID.match(app_id):
        raise ValueError(f"app id {app_id!r} cannot name a container")
    return f"berth-{app_id}"


def _get(app_id):
    """The app's container object, or None when there is none."""
    name = container_name(app_id)
    with _engine(f"Cannot inspect container {name}"):
        try:
            return client().containers.get(name)
        except docker.errors.NotFound:
            return None


# --- images ----------------------------------------------------------------------------------

def _image_ref(image):
    """(repository, tag-or-digest) for a pull; a bare name means :latest, as `docker pull` does."""
    repo, tag = docker.utils.parse_repository_tag(image)
    return repo, tag or "latest"


def _mb(n):
    return f"{n / 1e6:.1f} MB"


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


class _PullFailed(Exception):
    pass


def image_exists(image):
    with _engine(f"Cannot inspect image {image}"):
        try:
            client().images.get(image)
            return True
        except docker.errors.ImageNotFound:
            return False


def ensure_image(image, log=lambda line: None):
    """Make `image` available locally: a local image is used as is, anything else is pulled with
    condensed progress lines sent to `log(line)`. Raises ContainerError("Cannot pull image ...")."""
    if image_exists(image):
        log(f"Using local image {image}")
        return
    repo, tag = _image_ref(image)
    log(f"Pulling image {image}")
    progress = _PullProgress(log)
    try:
        with _engine(f"Cannot pull image {image}"):
            for event in client().api.pull(repo, tag=tag, stream=True, decode=True):
                progress.feed(event)
    except _PullFailed as exc:
        raise ContainerError(f"Cannot pull image {image}: {exc}") from None
    if not image_exists(image):
        raise ContainerError(f"Cannot pull image {image}: the engine reported success but has no such image")
    log(f"Pulled image {image}")


# --- ports -----------------------------------------------------------------------------------

def _bound_ports(host_config):
    """Host ports a container holds in its configuration (held even while it is stopped)."""
    ports = set()
    for bindings in (host_config.get("PortBindings") or {}).values():
        for binding in bindings or ():
            if str(binding.get("HostPort") or "").isdigit():
                ports.add(int(binding["HostPort"]))
    return ports


def reserved_ports():
    """Host ports published by Berth's containers, running or not."""
    ports = set()
    with _engine("Cannot list containers"):
        for c in client().api.containers(all=True, filters={"label": f"{LABEL_MANAGED}=true"}):
            try:
                info = client().api.inspect_container(c["Id"])
            except docker.errors.NotFound:
                continue        # removed while we looked
            ports |= _bound_ports(info.get("HostConfig") or {})
    return ports


def free_port(exclude=(), kind=socket.SOCK_STREAM):
    """A port free on 127.0.0.1 now that no Berth container (even a stopped one, whose port is
    not bound while it is down) has claimed, and not in `exclude` (ports the caller knows of)."""
    taken = reserved_ports() | set(exclude)
    for _ in range(100):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((PUBLISH_IP, 0))
            port = s.getsockname()[1]
        if port not in taken:
            return port
    raise ContainerError("No free port found on 127.0.0.1")


# --- lifecycle -------------------------------------------------------------------------------

def _port_in_use(exc):
    text = _reason(exc).lower()
    return "port is already allocated" in text or "address already in use" in text


def create_and_start(app_id, image, *, env=None, memory_limit=None, data_dir, http_port,
                     host_port=None, tcp_ports=None, udp_ports=None, labels=None,
                     restart_policy="unless-stopped", ports_ip=PUBLISH_IP, command=None):
    """(Re)create the app's container and start it.

    Any existing container of the app is removed first. `data_dir` (created if missing) is bound
    at /app/data. The app's `http_port` is published on 127.0.0.1:`host_port` (a free port Berth
    picks when None); `tcp_ports`/`udp_ports` map container port -> host port (None: pick one)
    on `ports_ip`. `command` (a list) replaces the image's entrypoint and command (debug mode). Returns {"id",
    "name", "host_port", "tcp_ports", "udp_ports"} with the ports actually published.
    """
    name = container_name(app_id)
    if not os.path.isabs(data_dir):
        raise ValueError(f"data_dir must be an absolute path, not {data_dir!r}")
    os.makedirs(data_dir, exist_ok=True)
    remove(app_id)
    # Ports we chose ourselves may be taken between choosing and binding; those are re-chosen.
    attempts = 3 if host_port is None or None in (tcp_ports or {}).values() \
        or None in (udp_ports or {}).values() else 1
    for attempt in range(attempts):
        chosen = set()

        def pick(port, kind=socket.SOCK_STREAM):
            if port is not None:
                return int(port)
            port = free_port(exclude=chosen, kind=kind)
            chosen.add(port)
            return port

        http_host = pick(host_port)
        tcp = {int(c): pick(h) for c, h in (tcp_ports or {}).items()}
        udp = {int(c): pick(h, socket.SOCK_DGRAM) for c, h in (udp_ports or {}).items()}
        ports = {f"{int(http_port)}/tcp": (PUBLISH_IP, http_host)}
        ports.update({f"{c}/tcp": (ports_ip, h) for c, h in tcp.items() if c != int(http_port)})
        ports.update({f"{c}/udp": (ports_ip, h) for c, h in udp.items()})
        all_labels = dict(labels or {})
        all_labels.update({LABEL_MANAGED: "true", LABEL_APP_ID: app_id, LABEL_HTTP_PORT: str(int(http_port))})
        with _engine(f"Cannot create container {name}"):
            container = client().containers.create(
                image,
                entrypoint=command[:1] if command else None,
                command=command[1:] if command else None,
                name=name,
                environment=[f"{k}={v}" for k, v in (env or {}).items()],
                labels=all_labels,
                mounts=[docker.types.Mount(DATA_MOUNT, data_dir, type="bind", read_only=False)],
                ports=ports,
                mem_limit=memory_limit or None,
                # No swap beyond the limit: the app's memory limit is what it gets.
                memswap_limit=memory_limit or None,
                restart_policy={"Name": restart_policy} if restart_policy else None,
                log_config=docker.types.LogConfig(type="json-file", config=LOG_CONFIG),
                stop_signal="SIGTERM",
            )
        try:
            with _engine(f"Cannot start container {name}"):
                container.start()
        except ContainerError as exc:
            # A container that never started is of no use and would be mistaken for the app's.
            _remove_quietly(container.id)
            if attempt + 1 < attempts and _port_in_use(exc.__cause__):
                continue
            raise
        return {"id": container.id, "name": name, "host_port": http_host, "tcp_ports": tcp, "udp_ports": udp}


def _remove_quietly(container_id):
    try:
        client().api.remove_container(container_id, force=True)
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        pass


def remove(app_id):
    """Remove the app's container (running or not). A missing container is fine."""
    name = container_name(app_id)
    deadline = time.monotonic() + 30
    while True:
        with _engine(f"Cannot remove container {name}"):
            try:
                client().api.remove_container(name, force=True, v=True)
                return
            except docker.errors.NotFound:
                return
            except docker.errors.APIError as exc:
                # Another removal of it is under way: wait for that one to finish.
                if exc.status_code != 409 or time.monotonic() > deadline:
                    raise
        time.sleep(0.1)


def stop(app_id, timeout=STOP_TIMEOUT):
    """Stop the app's container (SIGTERM, SIGKILL after `timeout` s). Missing or stopped is fine.
    A stopped container stays stopped: Docker's restart policy ignores containers stopped this way."""
    container = _get(app_id)
    if container is None:
        return
    with _engine(f"Cannot stop container {container.name}"):
        try:
            container.stop(timeout=timeout)
        except docker.errors.NotFound:
            pass


def _must_get(app_id):
    container = _get(app_id)
    if container is None:
        raise ContainerError(f"Container {container_name(app_id)} does not exist")
    return container


def start(app_id):
    """Start the app's stopped container (running already is fine). Missing: ContainerError."""
    container = _must_get(app_id)
    with _engine(f"Cannot start container {container.name}"):
        container.start()


def restart(app_id, timeout=STOP_TIMEOUT):
    """Restart the app's container (starts it when stopped). Missing: ContainerError."""
    container = _must_get(app_id)
    with _engine(f"Cannot restart container {container.name}"):
        container.restart(timeout=timeout)


def update_memory(app_id, memory_limit):
    """Change the running container's memory limit in place (bytes, > 0)."""
    if not isinstance(memory_limit, int) or memory_limit <= 0:
        raise ValueError("memory_limit must be a positive number of bytes")
    container = _must_get(app_id)
    with _engine(f"Cannot update memory limit of {container.name}"):
        container.update(mem_limit=memory_limit, memswap_limit=memory_limit)


# --- state -----------------------------------------------------------------------------------

def _published(host_config, proto):
    """{container port: host port} of one protocol from the container's configuration."""
    out = {}
    for key, bindings in (host_config.get("PortBindings") or {}).items():
        port, _, p = key.partition("/")
        for binding in bindings or ():
            if p == proto and str(binding.get("HostPort") or "").isdigit():
                out[int(port)] = int(binding["HostPort"])
    return out


def inspect(app_id):
    """The app container's state, or None when it has none:
    {exists, id, running, status, restart_count, exit_code, oom_killed, started_at, finished_at,
     host_port, http_port, tcp_ports, udp_ports, image, memory_limit, labels}."""
    name = container_name(app_id)
    with _engine(f"Cannot inspect container {name}"):
        try:
            info = client().api.inspect_container(name)
        except docker.errors.NotFound:
            return None
    state = info.get("State") or {}
    host_config = info.get("HostConfig") or {}
    labels = (info.get("Config") or {}).get("Labels") or {}
    tcp = _published(host_config, "tcp")
    http_port = int(labels[LABEL_HTTP_PORT]) if labels.get(LABEL_HTTP_PORT, "").isdigit() else None
    return {
        "exists": True,
        "id": info["Id"],
        "running": bool(state.get("Running")),
        "status": state.get("Status"),       # created, running, restarting, paused, exited, dead
        "restart_count": info.get("RestartCount", 0),
        "exit_code": state.get("ExitCode"),
        "oom_killed": bool(state.get("OOMKilled")),
        "error": state.get("Error") or None,
        "started_at": state.get("StartedAt"),
        "finished_at": state.get("FinishedAt"),
        "pid": state.get("Pid") or None,
        "http_port": http_port,
        "host_port": tcp.get(http_port),
        "tcp_ports": {c: h for c, h in tcp.items() if c != http_port},
        "udp_ports": _published(host_config, "udp"),
        "image": (info.get("Config") or {}).get("Image"),
        "memory_limit": host_config.get("Memory") or None,
        "labels": labels,
    }


LABEL_INSTANCE = "berth.instance"


def instance_id():
    """Which Berth (one data dir) a container belongs to, so several on one engine tell theirs apart."""
    return hashlib.sha256(os.path.realpath(config.get().data_dir).encode()).hexdigest()[:16]


def list_managed():
    """Berth's containers (label berth.managed=true), running or not:
    [{app_id, id, name, status, running, image, labels}]."""
    with _engine("Cannot list containers"):
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


# --- logs ------------------------------------------------------------------------------------

def _parse_line(raw):
    """(datetime UTC or None, text) from one `timestamps=True` log line."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = text.rstrip("\r\n")
    stamp, sep, rest = text.partition(" ")
    if sep and stamp.endswith("Z") and "T" in stamp:
        whole, _, frac = stamp[:-1].partition(".")
        try:
            when = datetime.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(
                microsecond=int((frac + "000000")[:6]) if frac else 0, tzinfo=datetime.timezone.utc)
            return when, rest
        except ValueError:
            pass
    return None, text


def logs(app_id, lines=100):
    """The last `lines` lines of the app container's output (stdout and stderr, in order) as
    [(timestamp, text)]; timestamps are aware UTC datetimes. No container: []."""
    container = _get(app_id)
    if container is None:
        return []
    with _engine(f"Cannot read logs of {container.name}"):
        try:
            data = container.logs(stdout=True, stderr=True, timestamps=True,
                                  tail=int(lines) if lines is not None else "all")
        except docker.errors.NotFound:
            return []
    return [_parse_line(line) for line in data.split(b"\n") if line]


class LogFollower:
    """Blocking iterator over the app container's log lines as (timestamp, text), starting with the
    last `lines` lines. Ends when the container stops or close() is called (from any thread)."""

    def __init__(self, app_id, lines=0):
        container = _must_get(app_id)
        with _engine(f"Cannot follow logs of {container.name}"):
            self._stream = container.logs(stdout=True, stderr=True, timestamps=True, stream=True,
                                          follow=True, tail=int(lines))
        self._lines = self._split()
        self._closed = False

    def _split(self):
        buffer = b""
        for chunk in self._stream:
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for line in complete:
                yield _parse_line(line)
        if buffer and not self._closed:
            yield _parse_line(buffer)

    def __iter__(self):
        return self

    def __next__(self):
        if self._closed:
            raise StopIteration
        try:
            return next(self._lines)
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError, ValueError):
            # The connection went away under us (close() from another thread, engine gone).
            raise StopIteration from None

    def close(self):
        self._closed = True
        try:
            self._stream.close()
        except (OSError, AttributeError, ValueError):
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def follow_logs(app_id, lines=0):
    """A LogFollower (blocking; use it from a thread). Missing container: ContainerError."""
    return LogFollower(app_id, lines)


async def follow_logs_async(app_id, lines=0):
    """Async generator over the app's log lines, read by a helper thread; closing the generator
    (or cancelling its consumer) closes the engine stream and ends the thread."""
    loop = asyncio.get_running_loop()
    follower = await asyncio.to_thread(LogFollower, app_id, lines)
    queue = asyncio.Queue()
    end = object()

    def pump():
        try:
            for item in follower:
                loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:
            return          # the event loop is closed: nobody is listening any more
        finally:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, end)
            except RuntimeError:
                pass

    thread = threading.Thread(target=pump, name=f"logs-{app_id}", daemon=True)
    thread.start()
    try:
        while True:
            item = await queue.get()
            if item is end:
                return
            yield item
    finally:
        follower.close()


# --- health ----------------------------------------------------------------------------------

def probe(host_port, path, timeout=2.0):
    """One GET of http://127.0.0.1:<host_port><path>: (status or None, reason text)."""
    conn = http.client.HTTPConnection(PUBLISH_IP, host_port, timeout=timeout)
    try:
        conn.request("GET", path or "/", headers={"User-Agent": "berth-health"})
        response = conn.getresponse()
        response.read(65536)
        return response.status, f"HTTP {response.status}"
    except (OSError, http.client.HTTPException) as exc:
        return None, (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                      or type(exc).__name__)
    finally:
        conn.close()


def wait_healthy(host_port, path, timeout=60.0, log=lambda line: None, app_id=None, interval=0.1):
    """Poll http://127.0.0.1:<host_port><path> until it answers 2xx/3xx; returns the status.
    Raises ContainerError naming the last status or error (and, given `app_id`, the container's
    state) after `timeout` seconds. Each change of outcome is reported through `log`."""
    url = f"http://{PUBLISH_IP}:{host_port}{path or '/'}"
    deadline = time.monotonic() + timeout
    last = None
    while True:
        status, reason = probe(host_port, path, timeout=min(5.0, max(0.5, timeout)))
        if status is not None and 200 <= status < 400:
            log(f"{url} answered HTTP {status}")
            return status
        if reason != last:
            log(f"Waiting for {url}: {reason}")
            last = reason
        if time.monotonic() >= deadline:
            state = ""
            if app_id is not None:
                info = inspect(app_id)
                state = "; container missing" if info is None else (
                    f"; container {info['status']}, exit code {info['exit_code']}, "
                    f"restarted {info['restart_count']} times" + (", OOM killed" if info["oom_killed"] else ""))
            raise ContainerError(f"Health check {url} failed after {timeout:g} s (last: {reason}){state}")
        time.sleep(interval)
