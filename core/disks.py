"""What the kernel says about the machine's filesystems (through psutil), for GET /system/disk_usage.

One entry per device: a device mounted several times (bind mounts, /var/lib/docker on the root
disk) is counted once, at its shortest mount point, so the figures add up like `df` shows them.
Pseudo filesystems (proc, tmpfs, overlay...) are left out, as psutil does for physical partitions.
"""
import psutil

from core import times


def filesystems() -> dict[str, dict]:
    """{device: {filesystem, type, size, used, available, capacity, mountpoint}}, sizes in bytes,
    capacity as the used fraction (0..1)."""
    found = {}
    for part in psutil.disk_partitions(all=False):
        known = found.get(part.device)
        if known is not None and len(known["mountpoint"]) <= len(part.mountpoint):
            continue
        try:
            usage = psutil.disk_usage(part.mountpoint)
        except OSError:  # unmounted meanwhile, or not readable by this user
            continue
        found[part.device] = {
            "filesystem": part.device, "type": part.fstype, "size": usage.total, "used": usage.used,
            "available": usage.free, "capacity": round(usage.used / usage.total, 4) if usage.total else 0,
            "mountpoint": part.mountpoint,
        }
    return found


def usage() -> dict:
    """The disk usage as Cloudron answers it: {ts, filesystems}, measured now."""
    return {"ts": times.iso(times.utcnow()), "filesystems": filesystems()}
