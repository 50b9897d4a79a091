"""Which host folders may become a volume, and whether a folder is a mount point.

A volume is bound into app containers that run as root, read-write unless the admin says
otherwise: a volume on a system folder would hand every app that mounts it the host (its
configuration, the Docker socket, the kernel's interfaces, Berth's own database). So the path an
admin gives is made absolute and normalised first (a '..' or '//' is refused, not silently
resolved, as Cloudron does), then refused when it is one of the system folders below, one of
their parents (a parent contains them), or inside one of them; the same is checked again on the
path with its symlinks resolved, so `/mnt/x -> /etc` is refused like `/etc`. The folder must
exist (Berth does not create host folders; as on Cloudron the admin makes it first) and be a
directory itself, not a symlink to one.

Pure rules on strings plus lstat/realpath: the unit tests cover every folder, parent and trick.
"""
import os
import re
import stat

from core.errors import BadRequest

# Refused themselves, with every parent (`/var` holds /var/lib/docker) and everything inside.
# /run and /var/run hold the Docker socket (root on the host for whoever can write to it); /usr,
# /bin, /sbin, /lib*, /root and /etc hold what root on the host runs and trusts.
SYSTEM_FOLDERS = (
    "/", "/etc", "/proc", "/sys", "/dev", "/boot", "/var/lib/docker", "/run", "/var/run",
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/root",
)
MOUNTINFO = "/proc/self/mountinfo"


def _contains(parent: str, path: str) -> bool:
    """Is `path` `parent` itself or inside it (both absolute and normalised)?"""
    return path == parent or parent == "/" or path.startswith(parent + "/")


def normalised(host_path: object, field: str = "hostPath") -> str:
    """`host_path` as an absolute, normalised path (a trailing slash is dropped); BadRequest when
    it is not absolute or not normalised ('.', '..', '//' in it)."""
    if not isinstance(host_path, str) or not host_path:
        raise BadRequest("is required (an absolute path)", field)
    if "\0" in host_path or any(ord(c) < 32 for c in host_path):
        raise BadRequest("must not contain control characters", field)
    if not host_path.startswith("/"):
        raise BadRequest("must be an absolute path", field)
    trimmed = host_path.rstrip("/") or "/"
    clean = "/" + os.path.normpath(trimmed).lstrip("/")     # normpath keeps a leading '//'
    if clean != trimmed:
        raise BadRequest(f"must be a normalised path (did you mean {clean}?)", field)
    return clean


def refusal(path: str, data_dir: str) -> str | None:
    """Why the normalised absolute `path` may not be a volume, or None when it may. `data_dir`
    (Berth's data folder) counts as a system folder: it holds the database and every secret."""
    for system in (*SYSTEM_FOLDERS, os.path.normpath(data_dir)):
        if path == system:
            return "is a system folder"
        if system == "/":
            continue            # everything is inside /: only / itself is refused for it
        if _contains(path, system):
            return f"contains the system folder {system}"
        if _contains(system, path):
            return f"is inside the system folder {system}"
    return None


def check_folder(host_path: object, data_dir: str, field: str = "hostPath") -> str:
    """The normalised path of an existing folder that may be a volume; BadRequest otherwise."""
    path = normalised(host_path, field)
    why = refusal(path, data_dir)
    if why:
        raise BadRequest(f"{path} {why}", field)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise BadRequest(f"{path} does not exist; create it on the server first", field) from None
    except OSError as e:
        raise BadRequest(f"{path} cannot be read: {e.strerror}", field) from None
    if stat.S_ISLNK(st.st_mode):
        raise BadRequest(f"{path} is a symbolic link; give the folder it points to", field)
    if not stat.S_ISDIR(st.st_mode):
        raise BadRequest(f"{path} is not a directory", field)
    # A symlinked parent (/mnt/x where /mnt -> /): judge where the path really leads as well.
    real = os.path.realpath(path)
    why = refusal(real, os.path.realpath(data_dir))
    if why:
        raise BadRequest(f"{path} leads to {real}, which {why}", field)
    return path


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash in paths as \040, \011, \012, \134
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mount_points(mountinfo: str | None = None) -> set[str]:
    """The mount points of Berth's mount namespace (from /proc/self/mountinfo, or the given text)."""
    if mountinfo is None:
        try:
            with open(MOUNTINFO) as f:
                mountinfo = f.read()
        except OSError:
            return set()
    points = set()
    for line in mountinfo.splitlines():
        parts = line.split(" ")
        if len(parts) > 4:
            points.add(_unescape(parts[4]))
    return points


def is_mount_point(path: str, mountinfo: str | None = None) -> bool:
    return os.path.normpath(path) in mount_points(mountinfo)
