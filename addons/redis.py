"""The redis addon: each app gets its own Redis container (`redis-<app id>` on the app network)
with a random password, and Cloudron's CLOUDRON_REDIS_* variables.

A dump is a snapshot: SAVE inside the container, then a copy of the dump.rdb it wrote into the
service's data folder. A load stops the container (Redis saves once more on the way down), puts
the dump in place of dump.rdb and starts it again, so Redis reads it at start-up. Files in that
folder are written by the container: they are opened without following symlinks.
"""
import os
import shutil
from collections.abc import Callable

import containers
from addons import credentials, services
from addons.errors import AddonError
from core import data_paths

ADDON = "redis"
PORT = 6379
CHUNK = 1024 * 1024


def _noop(line: str) -> None:
    pass


def _env(password, host):
    return {
        "CLOUDRON_REDIS_URL": f"redis://{services.REDIS_USER}:{password}@{host}",
        "CLOUDRON_REDIS_HOST": host,
        "CLOUDRON_REDIS_PORT": str(PORT),
        "CLOUDRON_REDIS_PASSWORD": password,
    }


def provision(app_id: str, log: Callable[[str], None] = _noop) -> dict[str, str]:
    """Start (or make sure of) the app's Redis; returns Cloudron's CLOUDRON_REDIS_* variables.
    A second call returns the same credentials."""
    stored = credentials.app_env(app_id, ADDON)
    password = stored["CLOUDRON_REDIS_PASSWORD"] if stored else credentials.new_password()
    where = services.ensure_redis(app_id, password, log)
    env = _env(password, where["host"])
    if env != stored:
        credentials.put_app_env(app_id, ADDON, env)
    log(f"Redis {where['host']} ready")
    return env


def deprovision(app_id: str, log: Callable[[str], None] = _noop) -> None:
    """Remove the app's Redis (container and data) and forget its credentials; missing is fine."""
    services.remove_redis(app_id)
    credentials.forget_app_env(app_id, ADDON)
    log("Redis removed")


def _ensure(app_id, log):
    env = credentials.app_env(app_id, ADDON)
    if env is None:
        return provision(app_id, log)
    services.ensure_redis(app_id, env["CLOUDRON_REDIS_PASSWORD"], log)
    return env


def dump(app_id: str, path: str, log: Callable[[str], None] = _noop) -> None:
    """Write a snapshot of the app's Redis (an RDB file) to `path`."""
    env = _ensure(app_id, log)
    name = services.redis_name(app_id)
    log(f"Saving a snapshot of {name}")
    try:
        code, out = containers.exec_run(services.container(name), ["redis-cli", "-h", "127.0.0.1", "SAVE"],
                                        env={"REDISCLI_AUTH": env["CLOUDRON_REDIS_PASSWORD"]}, timeout=600)
    except containers.ContainerError as exc:
        raise AddonError(name, f"cannot save a snapshot: {exc.message}") from None
    said = out.decode(errors="replace").strip()
    if code != 0 or said != "OK":
        raise AddonError(name, f"cannot save a snapshot: {said[-300:] or f'redis-cli exited with {code}'}")
    source = os.path.join(data_paths.addon_service_data(name), "dump.rdb")
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise AddonError(name, f"cannot read the snapshot: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as src, credentials.create_private(path) as out_file:
        shutil.copyfileobj(src, out_file, CHUNK)


def load(app_id: str, path: str, log: Callable[[str], None] = _noop) -> None:
    """Replace the content of the app's Redis with the snapshot at `path`."""
    env = _ensure(app_id, log)
    name = services.redis_name(app_id)
    folder = services.data_dir(name)
    log(f"Loading a snapshot into {name}")
    try:
        containers.stop_service(name)
    except containers.ContainerError as exc:
        raise AddonError(name, exc.message) from None
    staged = os.path.join(folder, ".dump.rdb.loading")
    with credentials.open_dump(path) as src:
        if os.path.lexists(staged):
            os.unlink(staged)
        with credentials.create_private(staged) as out_file:
            shutil.copyfileobj(src, out_file, CHUNK)
    os.replace(staged, os.path.join(folder, "dump.rdb"))    # replaces a planted symlink, never follows it
    for leftover in ("appendonlydir", "appendonly.aof"):    # an append-only file would win over the dump
        target = os.path.join(folder, leftover)
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target)
        elif os.path.lexists(target):
            os.unlink(target)
    services.ensure_redis(app_id, env["CLOUDRON_REDIS_PASSWORD"], log)
