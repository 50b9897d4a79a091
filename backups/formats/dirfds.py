"""Restoring into a folder without ever following a symlink: every entry is created relative to
a descriptor of its parent folder, and that descriptor is reached from the restore target one
component at a time with O_NOFOLLOW. A symlink made earlier in the same restore (`esc -> /etc`)
therefore cannot redirect a later entry (`esc/cron.d/job`): opening `esc` as a folder fails.

Also the rules for what an app's data may bring back: device nodes are not created and
setuid/setgid bits are cleared on files, unless the caller says the data is trusted
(`privileged`): an app container running as root could otherwise plant a setuid-root binary or
a raw disk device that a restore recreates on the host (security review, findings 1 and 7).
"""
import contextlib
import ctypes
import errno
import os
import shutil
import stat

from backups.formats.checksums import BackupRefused
from backups.formats.streams import Log

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
SETID = stat.S_ISUID | stat.S_ISGID
DEVICES = (stat.S_IFCHR, stat.S_IFBLK)


def safe_rel(path: str) -> str:
    """`path` if it is a plain relative path (no '', '.', '..' component, not absolute)."""
    parts = path.split("/") if isinstance(path, str) else [""]
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\0" in path:
        raise BackupRefused(f"the backup index holds an unsafe path {path!r}")
    return path


def restored_mode(kind: int, mode: int, privileged: bool) -> int:
    """Permission bits a restored entry of type `kind` (S_IFREG, ...) gets. Folders keep setgid
    (it only makes new files inherit the folder's group, no privilege); files and special files
    lose setuid/setgid unless the data is trusted."""
    mode &= 0o7777
    if not privileged and kind != stat.S_IFDIR:
        mode &= ~SETID
    return mode


def node_allowed(kind: int, privileged: bool) -> bool:
    """FIFOs are ordinary app data; device nodes only come back in a trusted restore."""
    return kind == stat.S_IFIFO or (privileged and kind in DEVICES)


class Walker:
    """Descriptors of folders under one root folder, each opened from its parent with O_NOFOLLOW.
    The folders of the last path asked for stay open (a stack), so entries in tree order cost
    one open per new folder, not one per component."""

    def __init__(self, root_fd: int) -> None:
        self.root = root_fd
        self.stack = []   # [(name, fd)], the components of the last folder asked for

    def folder(self, rel: str) -> int:
        """Descriptor of folder `rel` ('' is the root); valid until the next call."""
        parts = rel.split("/") if rel else []
        keep = 0
        while keep < min(len(parts), len(self.stack)) and self.stack[keep][0] == parts[keep]:
            keep += 1
        for _, fd in self.stack[keep:]:
            os.close(fd)
        del self.stack[keep:]
        fd = self.stack[-1][1] if self.stack else self.root
        for name in parts[keep:]:
            try:
                fd = os.open(name, DIR_FLAGS, dir_fd=fd)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise BackupRefused(f"the backup index holds {rel!r}, but {name!r} on its way is "
                                        "not a folder (a symlink?): refusing it") from None
                raise
            self.stack.append((name, fd))
        return fd

    def parent(self, rel: str) -> tuple[int, str]:
        """(descriptor of the parent folder, last component) of `rel`."""
        folder, _, name = rel.rpartition("/")
        return self.folder(folder), name

    def close(self) -> None:
        for _, fd in self.stack:
            os.close(fd)
        self.stack = []


def prepare_dest(dest_dir: str) -> bool:
    """Create the restore target if needed (0700); True if it was created."""
    created = not os.path.exists(dest_dir)
    os.makedirs(dest_dir, mode=0o700, exist_ok=True)
    return created


def clear_dest(dest_dir: str, created: bool) -> None:
    """Undo a failed restore: remove what it wrote (the target too if the restore created it).
    shutil.rmtree walks on descriptors and does not follow symlinks."""
    if created:
        shutil.rmtree(dest_dir, ignore_errors=True)
        return
    with contextlib.suppress(OSError):
        for name in os.listdir(dest_dir):
            p = os.path.join(dest_dir, name)
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(p)


try:
    _syncfs = ctypes.CDLL(None, use_errno=True).syncfs
    _syncfs.argtypes = [ctypes.c_int]
except (OSError, AttributeError):   # not Linux/glibc: a whole sync() does it too
    _syncfs = None


def syncfs(path: str) -> None:
    """Write back everything pending on the file system holding `path` (one syncfs, instead of
    an fsync per restored file). OSError if it cannot."""
    if _syncfs is None:
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if _syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
    finally:
        os.close(fd)


def sweep(dest_dir: str, log: Log) -> dict:
    """After an extraction by another program (tar): remove device nodes and sockets, clear
    setuid/setgid on files. Walks on descriptors, never following a symlink. Returns counts."""
    counts = {"devices": 0, "setid": 0, "examples": []}
    root = os.open(dest_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    stack = [("", root, os.scandir(root))]
    try:
        while stack:
            rel, fd, it = stack[-1]
            entry = next(it, None)
            if entry is None:
                it.close()
                os.close(fd)
                stack.pop()
                continue
            path = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_dir(follow_symlinks=False):
                try:
                    sub = os.open(entry.name, DIR_FLAGS, dir_fd=fd)
                except OSError as e:
                    log(f"restore: cannot check {path} ({e.strerror})")
                    continue
                stack.append((path, sub, os.scandir(sub)))
            elif not entry.is_symlink():
                _tame(fd, entry, path, counts)
    finally:
        for _, fd, it in stack:
            it.close()
            os.close(fd)
    if counts["devices"] or counts["setid"]:
        log(f"restore: removed {counts['devices']} device node(s), cleared setuid/setgid on "
            f"{counts['setid']} file(s) (app data may not bring them back): "
            + ", ".join(counts.pop("examples")))
    counts.pop("examples", None)
    return counts


def _tame(fd, entry, path, counts):
    st = entry.stat(follow_symlinks=False)
    kind = stat.S_IFMT(st.st_mode)
    if kind in DEVICES or kind == stat.S_IFSOCK:
        os.unlink(entry.name, dir_fd=fd)
        counts["devices"] += 1
    elif kind == stat.S_IFREG and st.st_mode & SETID:
        # Through a descriptor of that very file (O_NOFOLLOW): the name cannot be swapped for a
        # symlink between the check and the change. Opening a regular file has no side effects.
        f = os.open(entry.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd)
        try:
            now = os.fstat(f)
            if stat.S_ISREG(now.st_mode):
                os.fchmod(f, restored_mode(stat.S_IFREG, now.st_mode, False))
        finally:
            os.close(f)
        counts["setid"] += 1
    else:
        return
    if len(counts["examples"]) < 5:
        counts["examples"].append(path)
