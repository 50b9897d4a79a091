"""Which host folders backups may be written to.

A backup folder is written to as root, and before activation anyone can ask Berth to probe one
(POST /cloudron/restore), so a folder is accepted only when it is:

- absolute, without '..' components or NUL ('.' and repeated or trailing '/' are normalised
  away): what is checked is exactly what is used;
- not a system folder, by its name and by where its symlinks lead:
  - refused with everything below them (`SYSTEM_TREES`): /bin, /boot, /dev, /etc, every /lib*,
    /proc, /root, /run, /sbin, /snap, /sys, /usr, and under /var the folders of system state
    (/var/lib, /var/log, /var/run, /var/lock, /var/cache, /var/spool, /var/mail): writing
    there touches the OS, its packages, the Docker data or other services' databases;
  - refused themselves but usable below (`SYSTEM_FOLDERS`): /, /home, /media, /mnt, /opt,
    /srv, /tmp, /var, /var/tmp (e.g. /var/backups, /mnt/disk/backups, /home/backups are fine);
- not Berth's data dir nor anything in it except its `backups` folder (the default storage):
  backups must never be written over the database, certificates or app data.

Errors name the field and say only what is wrong with the *given* path (never what a symlink
resolves to); whether a folder exists is left to probe(), which says only "does not exist".
"""
import os

from core import config, data_paths, errors

SYSTEM_TREES = ("/bin", "/boot", "/dev", "/etc", "/proc", "/root", "/run", "/sbin", "/snap", "/sys", "/usr",
                "/var/lib", "/var/log", "/var/run", "/var/lock", "/var/cache", "/var/spool", "/var/mail")
SYSTEM_FOLDERS = ("/", "/home", "/media", "/mnt", "/opt", "/srv", "/tmp", "/var", "/var/tmp")


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def refusal(path: str) -> str | None:
    """Why the normalised absolute `path` may not hold backups, or None if it may."""
    if path in SYSTEM_FOLDERS:
        return "must not be a system folder"
    first = path.split("/")[1]
    if first.startswith("lib") or any(_within(path, tree) for tree in SYSTEM_TREES):
        return "must not be in a system folder"
    data_dir, backups = config.get().data_dir, data_paths.default_backups()
    for resolve in (os.path.normpath, os.path.realpath):    # the data dir may be a symlink
        if _within(path, resolve(data_dir)) and not _within(path, resolve(backups)):
            return "must not be Berth's data dir or in it (except its backups folder)"
    return None


def check_folder(path: object, field: str) -> str:
    """The normalised absolute folder `path`, or BadRequest naming `field` (see module doc).
    Looks at the filesystem only to follow symlinks; creates and changes nothing."""
    if not isinstance(path, str) or not path:
        raise errors.BadRequest("is required", field)
    if "\0" in path or not os.path.isabs(path):
        raise errors.BadRequest("must be an absolute path", field)
    if ".." in path.split("/"):
        raise errors.BadRequest("must not contain '..' components", field)
    folder = os.path.normpath(path)
    if folder.startswith("//"):     # POSIX keeps a leading '//' as is
        folder = "/" + folder.lstrip("/")
    reason = refusal(folder) or refusal(os.path.realpath(folder))
    if reason:
        raise errors.BadRequest(reason, field)
    return folder


def check_opened_folder(fd: int, field: str) -> None:
    """BadRequest naming `field` if the folder open as `fd` is one check_folder refuses: what
    was opened is what is checked, so a symlink swapped in after validation changes nothing."""
    try:
        where = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return      # no /proc: check_folder's check of the path stands
    if where.startswith("/") and refusal(os.path.normpath(where)):
        raise errors.BadRequest("must not be (or lead into) a system folder or Berth's data dir", field)
