"""The machine as the kernel reports it (psutil): the disks Berth's data lives on, memory and swap.

GET /cloudron/disks answers, for the filesystems holding Berth's data dir, the apps' data, the
Docker engine's data root and `/`, one entry per filesystem with its size, use and what lives on
it. A filesystem is one device: a device mounted twice (the root disk bind-mounted at
/var/lib/docker) is one entry listing both paths, so the sizes are not counted twice.
"""
import os

import psutil

import containers
from core import data_paths

# Cloudron names its places boxDataDisk, appsDataDisk, platformDataDisk; Berth's platform data is
# its data dir (box), and it adds the engine's data root and the root filesystem.
DISK_KEYS = {"box": "boxDataDisk", "apps": "appsDataDisk", "docker": "dockerDataDisk", "root": "rootDisk"}


def _mount_point(path: str) -> str:
    path = os.path.realpath(path)
    while not os.path.ismount(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _partition(mount_point: str) -> tuple[str, str]:
    """(device, type) of what is mounted at `mount_point`; the last mount there is the one seen."""
    found = ("", "")
    for part in psutil.disk_partitions(all=True):
        if part.mountpoint == mount_point:
            found = (part.device, part.fstype)
    return found


def _places() -> list[tuple[str, str]]:
    """(what, path) of every place /cloudron/disks reports on; a path that does not exist is left out."""
    places = [("box", data_paths.root()), ("apps", data_paths.apps_root())]
    docker_root = containers.data_root()
    if docker_root:  # None: the engine is not reachable (or on another machine: DOCKER_HOST=tcp://)
        places.append(("docker", docker_root))
    places.append(("root", "/"))
    return [(what, path) for what, path in places if os.path.exists(path)]


def disks() -> dict:
    """{disks: [{filesystem, type, size, used, available, capacity, mountpoint, contains:
    [{id, path}]}], boxDataDisk, appsDataDisk, dockerDataDisk, rootDisk: the filesystem of each
    place}, measured now; sizes in bytes, capacity the used fraction (0..1)."""
    entries: dict[str, dict] = {}
    out: dict = {"disks": []}
    for what, path in _places():
        mount = _mount_point(path)
        device, fstype = _partition(mount)
        key = device if device.startswith("/") else mount  # overlay/tmpfs "devices" are names, not disks
        entry = entries.get(key)
        if entry is None:
            usage = psutil.disk_usage(mount)
            entry = entries[key] = {
                "filesystem": device or mount, "type": fstype, "size": usage.total, "used": usage.used,
                "available": usage.free, "capacity": round(usage.used / usage.total, 4) if usage.total else 0,
                "mountpoint": mount, "contains": [],
            }
            out["disks"].append(entry)
        entry["contains"].append({"id": what, "path": path})
        out[DISK_KEYS[what]] = entry["filesystem"]
    return out


def memory() -> dict:
    """{memory, swap}: total RAM and total swap in bytes."""
    return {"memory": psutil.virtual_memory().total, "swap": psutil.swap_memory().total}
