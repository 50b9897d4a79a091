"""The addon services: one shared PostgreSQL and one shared MySQL (MariaDB) server, and one Redis
per app, each a container on the app network that the apps reach by name (`postgresql`,
`mysql`, `redis-<app id>`), as on Cloudron.

A service's data lives in <data>/services/<name> (0700) and survives its container; its root
password is generated once and kept in the addon_service table (never logged); so is its memory
limit and whether it should run (`enabled`), which check_and_heal() reads to bring back a
service that died or was killed. Starting or creating a service is serialised per service by a
lock file beside its data, so two task processes never create the same container twice.
"""
import contextlib
import fcntl
import logging
import os
import shutil
import time
from collections.abc import Callable

import containers
from addons import credentials, images
from addons.errors import AddonError
from core import data_paths, errors

log_ = logging.getLogger("berth.addons")
MIB = 1024 * 1024
READY_TIMEOUT = 180
DEFAULT_MEMORY = {"postgresql": 512 * MIB, "mysql": 512 * MIB, "redis": 128 * MIB}
MIN_MEMORY = 32 * MIB
# Per kind: the DNS alias (Cloudron's host names), the port, where the image keeps its data, the
# signal that stops it cleanly, and the engine's periodic health probe (needs no password).
KINDS = {
    "postgresql": {"port": 5432, "data": "/var/lib/postgresql/data", "stop_signal": "SIGINT",
                   "health": ["pg_isready", "-q", "-h", "127.0.0.1"]},
    "mysql": {"port": 3306, "data": "/var/lib/mysql", "stop_signal": "SIGTERM",
              "health": ["mariadb-admin", "ping", "--silent", "-h", "127.0.0.1"]},
    "redis": {"port": 6379, "data": "/data", "stop_signal": "SIGTERM",
              "health": ["redis-cli", "-h", "127.0.0.1", "ping"]},
}
REDIS_USER = "redisuser"    # the user name in Cloudron's CLOUDRON_REDIS_URL


def _noop(line: str) -> None:
    pass


def kind(name: str) -> str:
    """"postgresql", "mysql" or "redis" for a service name; anything else is not a service."""
    if name in ("postgresql", "mysql"):
        return name
    if name.startswith("redis-") and len(name) > 6:
        return "redis"
    raise errors.NotFound(f"No such service: {name}")


def redis_name(app_id: str) -> str:
    name = f"redis-{app_id}"
    containers.service_container_name(name)      # ValueError on an id that cannot name one
    return name


def container(name: str) -> str:
    """The engine's name of service `name`'s container (for exec_run)."""
    return containers.service_container_name(name)


def data_dir(name: str) -> str:
    """<data>/services/<name>, made 0700 (with its parent) on the way."""
    root = data_paths.addon_services()
    path = data_paths.addon_service_data(name)
    for folder in (root, path):
        os.makedirs(folder, mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)
    return path


class _locked:
    """An exclusive lock file per service under <data>/services, across processes. remove_redis
    deletes the file while holding it, so a waiter checks after locking that the file it holds is
    still the one at the path (else it would share the lock with whoever makes the next one)."""

    def __init__(self, name):
        root = data_paths.addon_services()
        os.makedirs(root, mode=0o700, exist_ok=True)
        self.path = os.path.join(root, f".{name}.lock")

    def __enter__(self):
        while True:
            file = open(self.path, "a")
            fcntl.flock(file, fcntl.LOCK_EX)
            try:
                if os.stat(self.path).st_ino == os.fstat(file.fileno()).st_ino:
                    self.file = file
                    return self
            except FileNotFoundError:
                pass
            file.close()

    def __exit__(self, *exc):
        self.file.close()
        return False


def _memory(row) -> int:
    return row.memory_limit or DEFAULT_MEMORY[kind(row.name)]


def _run_args(row, image):
    """(env, command) the container of service `row` is created with."""
    what = kind(row.name)
    if what == "postgresql":
        return {"POSTGRES_PASSWORD": row.root_password}, None
    if what == "mysql":
        return {"MARIADB_ROOT_PASSWORD": row.root_password}, None
    password = row.root_password
    # REDISCLI_AUTH lets the health probe and Berth's own redis-cli in; the ACL user serves
    # clients that send Cloudron's "redisuser" along with the password.
    return ({"REDISCLI_AUTH": password},
            ["redis-server", "--requirepass", password, "--user", REDIS_USER, "on", f">{password}",
             "~*", "&*", "+@all", "--appendonly", "no"])


def _create(row, image, log):
    what = kind(row.name)
    spec = KINDS[what]
    env, command = _run_args(row, image)
    log(f"Starting the {row.name} service ({image})")
    try:
        containers.run_service(row.name, image, env=env, command=command,
                               binds={data_dir(row.name): spec["data"]}, memory_limit=_memory(row),
                               network=containers.app_network(), aliases=[row.name],
                               stop_signal=spec["stop_signal"], healthcheck=spec["health"])
    except containers.ContainerError as exc:
        raise AddonError(row.name, exc.message) from None


def _bring_up(row, image, log):
    """Make the service's container exist with `image` and run; does not wait for readiness."""
    info = containers.service_inspect(row.name)
    if info is None or info["image"] != image or (info["memory_limit"] or 0) != _memory(row):
        _create(row, image, log)
    elif not info["running"] and info["status"] != "restarting":
        log(f"Starting the stopped {row.name} service")
        try:
            containers.start_service(row.name)
        except containers.ContainerError:
            _create(row, image, log)   # e.g. its network is gone: a new container joins the current one


def probe(name: str, password: str) -> tuple[bool, str]:
    """(accepts connections with the root credentials, what the client said)."""
    what = kind(name)
    if what == "postgresql":
        argv, env = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc", "SELECT 1"], {"PGPASSWORD": password}
    elif what == "mysql":
        argv, env = ["mariadb", "-h", "127.0.0.1", "-uroot", "-N", "-e", "SELECT 1"], {"MYSQL_PWD": password}
    else:
        argv, env = ["redis-cli", "-h", "127.0.0.1", "ping"], {"REDISCLI_AUTH": password}
    try:
        code, out = containers.exec_run(container(name), argv, env=env, timeout=15)
    except containers.ContainerError as exc:
        return False, exc.message
    text = out.decode(errors="replace").strip()
    return code == 0 and text.splitlines()[-1:] in (["1"], ["PONG"]), text


def wait_ready(name: str, password: str, log: Callable[[str], None] = _noop, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    said = ""
    while True:
        ok, said = probe(name, password)
        if ok:
            return
        info = containers.service_inspect(name)
        if info is None:
            raise AddonError(name, "the service container is gone")
        if time.monotonic() > deadline:
            raise AddonError(name, f"the service did not accept connections within {timeout:.0f} s "
                                   f"(container {info['status']}; {said[-300:] or 'no answer'})")
        time.sleep(0.5)


def _ensure(name, image, password, log):
    row = credentials.ensure_service_row(name, password)
    with _locked(name):
        updates = {}
        if not row.enabled:
            updates["enabled"] = True
        if password is not None and row.root_password != password:
            updates["root_password"] = password
        if updates:
            credentials.set_service(name, **updates)
            row = credentials.service(name)
            if "root_password" in updates:
                containers.remove_service(name)
        _bring_up(row, image, log)
    wait_ready(name, row.root_password, log)
    return {"host": name, "port": KINDS[kind(name)]["port"]}


def ensure_service(name: str, log: Callable[[str], None] = _noop) -> dict:
    """Make the shared "postgresql" or "mysql" service run and accept connections:
    {"host": its name on the app network, "port"}."""
    if name not in ("postgresql", "mysql"):
        raise ValueError(f"{name!r} is not a shared service")
    return _ensure(name, images.ensure_image(name, log), None, log)


def root_password(name: str) -> str:
    row = credentials.service(name)
    if row is None:
        raise AddonError(name, "the service was never started")
    return row.root_password


def ensure_redis(app_id: str, password: str, log: Callable[[str], None] = _noop) -> dict:
    """Make the app's own Redis run with `password`: {"host": "redis-<app id>", "port": 6379}."""
    return _ensure(redis_name(app_id), images.ensure_image("redis", log), password, log)


def remove_redis(app_id: str) -> None:
    """Remove the app's Redis: container, data and row. Missing is fine."""
    name = redis_name(app_id)
    with _locked(name):
        try:
            containers.remove_service(name)
        except containers.ContainerError as exc:
            raise AddonError(name, exc.message) from None
        shutil.rmtree(data_paths.addon_service_data(name), ignore_errors=True)
        credentials.forget_service(name)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(data_paths.addon_services(), f".{name}.lock"))


# --- what /services shows and does -------------------------------------------------------------

def list_names() -> list[str]:
    """The addon services: the shared "postgresql" and "mysql" (always listed), and each app's
    "redis-<app id>"."""
    return ["postgresql", "mysql"] + sorted(r.name for r in credentials.services() if kind(r.name) == "redis")


def _row_or_404(name):
    kind(name)
    row = credentials.service(name)
    if row is None and name not in ("postgresql", "mysql"):
        raise errors.NotFound(f"No such service: {name}")
    return row


def status(name: str) -> dict:
    """{"name", "status": "active"|"starting"|"stopped", "memoryUsed", "memoryPercent", "error",
    "config": {"memoryLimit"}} from the engine's view of the container (no probe of our own:
    the engine's health check says whether it answers)."""
    row = _row_or_404(name)
    limit = _memory(row) if row is not None else DEFAULT_MEMORY[kind(name)]
    result = {"name": name, "status": "stopped", "memoryUsed": 0, "memoryPercent": 0, "error": None,
              "config": {"memoryLimit": limit}}
    info = containers.service_inspect(name) if row is not None else None
    if info is None:
        result["error"] = ("not started (no app uses it yet)" if row is None or not row.enabled
                           else "the service container is missing")
        return result
    if info["running"]:
        result["status"] = "active" if info["health"] in ("healthy", None) else "starting"
        if info["health"] == "unhealthy":
            result["error"] = "the service does not answer its health check"
        stats = containers.memory_stats(info["id"])
        if stats:
            result["memoryUsed"] = stats["used"]
            result["memoryPercent"] = round(100 * stats["used"] / limit) if limit else 0
    elif info["status"] == "restarting":
        result["status"] = "starting"
        result["error"] = f"the service exited with {info['exit_code']} and is being restarted"
    else:
        result["error"] = info["error"] or (
            "killed: out of memory" if info["oom_killed"] else f"not running (exit code {info['exit_code']})")
    return result


def restart(name: str, log: Callable[[str], None] = _noop) -> None:
    """Restart the service (create it when its container is missing, start a shared one never
    started before); does not wait for it to accept connections. May build the local image
    first (minutes, once per engine) when no image is at hand."""
    row = _row_or_404(name) or credentials.ensure_service_row(name)
    image = images.ensure_image(kind(name), log)
    with _locked(name):
        if not row.enabled:
            credentials.set_service(name, enabled=True)
        info = containers.service_inspect(name)
        try:
            if info is not None and info["image"] == image and info["running"]:
                containers.restart_service(name)
            else:
                _bring_up(row, image, log)
        except containers.ContainerError as exc:
            raise AddonError(name, exc.message) from None


def stop(name: str) -> None:
    """Stop the service on purpose: check_and_heal leaves it stopped until start/restart."""
    row = _row_or_404(name)
    if row is None:
        return
    with _locked(name):
        credentials.set_service(name, enabled=False)
        containers.stop_service(name)


def set_memory_limit(name: str, memory_limit: int) -> None:
    """Keep `memory_limit` bytes for the service and apply it to the running container."""
    if isinstance(memory_limit, bool) or not isinstance(memory_limit, int) or memory_limit < MIN_MEMORY:
        raise errors.BadRequest(f"memoryLimit must be at least {MIN_MEMORY} bytes")
    if _row_or_404(name) is None:
        # remembered for when an app first needs it; not a reason for check_and_heal to start it
        credentials.ensure_service_row(name)
        credentials.set_service(name, enabled=False)
    row = credentials.service(name)
    with _locked(name):
        credentials.set_service(name, memory_limit=memory_limit)
        if containers.service_inspect(name) is not None:
            try:
                containers.update_service_memory(name, memory_limit)
            except containers.ContainerError as exc:
                raise AddonError(row.name, exc.message) from None


def _needs_healing(info: dict | None) -> bool:
    """Missing, stopped for good, or running but unhealthy (three failed health checks: hung)."""
    if info is None:
        return True
    if info["running"]:
        return info["health"] == "unhealthy"
    return info["status"] != "restarting"


def check_and_heal() -> list[str]:
    """Bring back every service that should run and does not (killed, crashed for good, or its
    container removed), and restart one that runs but has failed its health check three times
    in a row (hung): the health monitor's job. Returns the names it started or restarted."""
    healed = []
    for listed in credentials.services():
        name = listed.name
        if not listed.enabled or not _needs_healing(containers.service_inspect(name)):
            continue
        try:
            with _locked(name):
                # Again under the lock: an uninstall may have removed the service meanwhile (the
                # container first, then its row: bringing it up would leave a Redis nobody owns),
                # or a restart brought it back.
                row = credentials.service(name)
                info = containers.service_inspect(name) if row is not None else None
                if row is None or not row.enabled or not _needs_healing(info):
                    continue
                hung = info is not None and info["running"]
                if hung:
                    containers.restart_service(name)
                else:
                    _bring_up(row, images.ensure_image(kind(name)), _noop)
            healed.append(name)
            log_.warning("addon service %s was %s; started it again", name,
                         "missing" if info is None else "not answering" if hung else info["status"])
        except (AddonError, containers.ContainerError) as exc:
            log_.error("addon service %s could not be started again: %s", name, exc)
    return healed
