"""The image each addon service runs: the configured one (BERTH_POSTGRESQL_IMAGE, BERTH_MYSQL_IMAGE,
BERTH_REDIS_IMAGE; official postgres:15, mariadb:10.11, redis:7 by default) when the engine has it
or can pull it, otherwise an equivalent built here from Debian packages.

Why a local build: Berth must give working addons on an offline or air-gapped server, where no
registry answers. The build is

    debootstrap --variant=minbase --include=postgresql-15,mariadb-server,redis-server bookworm
    (one root filesystem carries all three servers), trimmed of documentation, translations and
    the packages' default clusters, plus small entrypoints (addons/image_recipe.py) that follow
    the official images' documented variables and data folders;
    tar | docker import (streamed)      -> berth-local/addons-rootfs:<recipe hash>
    one derived image per service       -> berth-local/{postgresql,mysql,redis}:<recipe hash>
                                           (entrypoint and command only: no extra layer)

The tag carries the hash of the recipe, so a second call finds the images and returns at once,
and a changed recipe builds anew. One build at a time: a lock file under the data dir
(addon-images/build.lock) makes a second task process wait and then find the images made.
A failed pull is remembered for the life of the process, so an offline server does not try the
registry on every provisioning. Progress goes to `log` (the task log); takes a minute or two.
"""
import fcntl
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable

import containers
from addons import image_recipe as recipe
from addons.errors import AddonError
from core import commands, config, data_paths

SERVICES = ("postgresql", "mysql", "redis")
PULL_TIMEOUT = 20               # seconds per answer from the engine while pulling
BUILD_TIMEOUT = 1800            # seconds for debootstrap
LOCAL_REPOSITORY = "berth-local"
_failed_pulls: set[str] = set()
_lock = threading.Lock()


def configured_image(service: str) -> str:
    cfg = config.get()
    return {"postgresql": cfg.postgresql_image, "mysql": cfg.mysql_image, "redis": cfg.redis_image}[_check(service)]


def local_image(service: str) -> str:
    """The tag of the locally built image of `service` for the current recipe."""
    return f"{LOCAL_REPOSITORY}/{_check(service)}:{recipe.recipe_hash()}"


def _check(service):
    if service not in SERVICES:
        raise ValueError(f"no image for addon service {service!r}")
    return service


def ensure_image(service: str, log: Callable[[str], None] = lambda line: None) -> str:
    """The image reference to run for `service` ("postgresql", "mysql" or "redis"): the
    configured image when present or pullable, else the local build (made on first use)."""
    configured = configured_image(service)
    try:
        if containers.image_exists(configured):
            return configured
        if configured not in _failed_pulls:
            try:
                containers.try_pull(configured, log, timeout=PULL_TIMEOUT)
                return configured
            except containers.ContainerError as exc:
                _failed_pulls.add(configured)
                log(f"{exc.message}; using an image built from Debian packages instead")
        return build_local(service, log)
    except containers.ContainerError as exc:
        raise AddonError(service, exc.message) from None


def build_local(service: str, log: Callable[[str], None] = lambda line: None) -> str:
    """The local image of `service`, built (with the other two) when missing."""
    tag = local_image(service)
    if containers.image_exists(tag):
        return tag
    folder = data_paths.addon_image_builds()
    os.makedirs(folder, mode=0o700, exist_ok=True)
    with _lock, open(os.path.join(folder, "build.lock"), "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log("Waiting for another build of the addon image to finish")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if containers.image_exists(tag):
            return tag
        base = f"{LOCAL_REPOSITORY}/addons-rootfs:{recipe.base_hash()}"
        if not containers.image_exists(base):
            _build_base(service, base, os.path.join(folder, f"rootfs-{recipe.base_hash()}"), log)
        files = {path: (text.encode(), mode) for path, (text, mode) in recipe.FILES.items()}
        for name in SERVICES:
            repository, _, version = local_image(name).rpartition(":")
            containers.derive_image(base, repository, version, recipe.SERVICE_CHANGES[name], files=files)
        log(f"Addon images ready: {', '.join(local_image(name) for name in SERVICES)}")
        _remove_stale_images(base)
    return tag


def _remove_stale_images(base):
    """Remove local addon images of older recipes; one a container still uses stays."""
    current = {base, *(local_image(name) for name in SERVICES)}
    for repository in (f"{LOCAL_REPOSITORY}/addons-rootfs", *(f"{LOCAL_REPOSITORY}/{n}" for n in SERVICES)):
        for image in containers.image_tags(repository):
            if image not in current:
                try:
                    containers.remove_image(image)
                except containers.ContainerError:
                    pass


def _debootstrap():
    found = shutil.which("debootstrap") or shutil.which("debootstrap", path="/usr/sbin:/sbin")
    if not found:
        raise AddonError("images", "cannot build the addon image: debootstrap is not installed "
                                   "(scripts/system.sh packages run installs it)")
    return found


def _unmount_under(root):
    """Unmount what an interrupted debootstrap left mounted inside `root` (proc, sys), deepest first,
    so removing the folder never walks into the host's /proc or /sys."""
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == root or point.startswith(root + "/"):
                mounts.append(point)
    for point in sorted(mounts, key=len, reverse=True):
        commands.run(["umount", "-l", point], check=False)


def _clear(root):
    if os.path.lexists(root):
        _unmount_under(root)
        shutil.rmtree(root)


class _Condensed:
    """debootstrap prints a line per package (hundreds): pass on the phases and every 25th line."""

    def __init__(self, log):
        self.log, self.phase, self.count = log, None, 0

    def __call__(self, line):
        line = line.rstrip()
        words = line.split()
        if words[:2] == ["I:", "Validating"]:     # follows every "Retrieving" line
            return
        phase = words[1] if len(words) > 1 and words[0] == "I:" else None
        self.count = self.count + 1 if phase == self.phase else 0
        if words[:1] in (["W:"], ["E:"]) or self.count % 25 == 0:
            self.log(f"debootstrap: {line}")
        self.phase = phase


def _build_base(service, base, root, log):
    started = time.monotonic()
    debootstrap = _debootstrap()
    _clear(root)
    log(f"Building the addon image from Debian {recipe.SUITE} packages ({', '.join(recipe.PACKAGES)}); "
        f"this takes a few minutes once")
    argv = [debootstrap, "--variant=minbase", f"--include={','.join(recipe.PACKAGES)}",
            recipe.SUITE, root, config.get().debian_mirror]
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
           "DEBIAN_FRONTEND": "noninteractive"}
    try:
        proc = commands.spawn(argv, stdout=commands.PIPE, stderr=commands.STDOUT, stdin=commands.DEVNULL,
                              env=env, text=True, errors="replace")
        killer = threading.Timer(BUILD_TIMEOUT, proc.kill)
        killer.start()
        condensed, tail = _Condensed(log), []
        try:
            for line in proc.stdout:
                condensed(line)
                tail = (tail + [line.rstrip()])[-15:]
        finally:
            killer.cancel()
            code = proc.wait()
        if code != 0:
            raise AddonError(service, f"cannot build the addon image: debootstrap exited with {code}: "
                                      + " | ".join(tail[-5:]))
        log(f"Debian root filesystem ready after {time.monotonic() - started:.0f} s; trimming it")
        _trim(root)
        log(f"Importing it into Docker as {base}")
        _import(root, base, service)
        log(f"Imported {base} after {time.monotonic() - started:.0f} s")
    finally:
        _clear(root)


def _trim(root):
    for relative in recipe.TRIM:
        path = os.path.join(root, relative)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
    for relative in ("var/log", "var/lib/mysql", "var/lib/apt/lists/partial", "var/cache/apt/archives/partial"):
        os.makedirs(os.path.join(root, relative), exist_ok=True)


def _import(root, base, service):
    errors = tempfile.TemporaryFile()
    tar = commands.spawn(["tar", "--numeric-owner", "-C", root, "-cf", "-", "--exclude=./proc/*",
                          "--exclude=./sys/*", "--exclude=./dev/*", "."],
                         stdout=commands.PIPE, stderr=errors, stdin=commands.DEVNULL)

    def chunks():
        while True:
            chunk = tar.stdout.read(1024 * 1024)
            if not chunk:
                return
            yield chunk

    repository, _, version = base.rpartition(":")
    try:
        containers.import_rootfs(chunks(), repository, version, changes=recipe.BASE_CHANGES)
    finally:
        tar.stdout.close()
        code = tar.wait()
    if code != 0:
        containers.remove_image(base)
        errors.seek(0)
        raise AddonError(service, f"cannot build the addon image: tar exited with {code}: "
                                  f"{errors.read().decode(errors='replace')[-500:]}")
    errors.close()
