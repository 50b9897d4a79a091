"""The walk of an rsync backup's source: every entry under the folder, depth first with names
sorted, on folder descriptors opened with O_NOFOLLOW, and the opening of a file the walk has just
seen without following a symlink or opening anything but that regular file (device, inode).

The source is an app's data folder, which the app (hostile, maybe root in its container) can
change while it is read: a symlink, FIFO or device swapped in is logged and left out, never
followed (security review, finding 2); reads stop at the scanned size (read_capped).
"""
import os
import stat
from collections.abc import Iterator

from backups.formats.dirfds import DIR_FLAGS
from backups.formats.streams import BLOCK, Log

# O_PATH: a descriptor that names the inode without opening it (a device's driver is never
# called); the file is then opened through /proc/self/fd, which is that very inode, not a name
# that could be swapped in between.
_PROBE_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_FALLBACK_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _names(fd):
    return iter(sorted(os.listdir(fd)))


class Scan:
    """Every entry under src_dir ('.' first), depth first with names sorted, as a stream; folders
    are walked on descriptors. open_file(e) opens the file entry just yielded."""

    def __init__(self, src_dir: str, log: Log) -> None:
        self.src_dir, self.log = src_dir, log
        self.stack = []   # (path, fd, names left) of the folders being walked
        self.dev = None   # st_dev of the entry last yielded
        self.seen_inodes = {}   # (dev, ino) -> first path, for files with more than one link only

    def __iter__(self):
        root = os.open(self.src_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.stack.append(("", root, _names(root)))
        st = os.fstat(root)
        yield {"p": ".", "t": "d", "m": stat.S_IMODE(st.st_mode), "u": st.st_uid, "g": st.st_gid,
               "mt": st.st_mtime_ns}
        while self.stack:
            rel, fd, names = self.stack[-1]
            name = next(names, None)
            if name is None:
                os.close(fd)
                self.stack.pop()
                continue
            e = self._entry(fd, f"{rel}/{name}" if rel else name, name)
            if e is not None:
                yield e

    def _entry(self, fd, path, name):
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:   # removed while we walk: a live folder
            return None
        e = {"p": path, "m": stat.S_IMODE(st.st_mode), "u": st.st_uid, "g": st.st_gid, "mt": st.st_mtime_ns}
        kind = stat.S_IFMT(st.st_mode)
        self.dev = st.st_dev
        if kind == stat.S_IFDIR:
            return self._folder(fd, name, e)
        if kind == stat.S_IFREG:
            if st.st_nlink > 1:
                first = self.seen_inodes.setdefault((st.st_dev, st.st_ino), path)
                if first != path:
                    return {**e, "t": "h", "l": first}
            e.update(t="f", s=st.st_size, ct=st.st_ctime_ns, i=st.st_ino)
        elif kind == stat.S_IFLNK:
            try:
                e.update(t="l", l=os.readlink(name, dir_fd=fd))
            except OSError:   # gone, or no longer a symlink
                return None
        elif kind in (stat.S_IFIFO, stat.S_IFCHR, stat.S_IFBLK):
            e.update(t="n", k=kind, r=st.st_rdev)
        else:
            self.log(f"rsync: skipping {path} (a socket or other special file)")
            return None
        return e

    def _folder(self, fd, name, e):
        try:
            sub = os.open(name, DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            return None
        except OSError as err:   # ELOOP/ENOTDIR: swapped for a symlink or a file since the stat
            self.log(f"rsync: skipping {e['p']}: it is no longer a folder ({err.strerror})")
            return None
        self.stack.append((e["p"], sub, _names(sub)))
        e["t"] = "d"
        return e

    def open_file(self, e: dict) -> int | None:
        """A read descriptor of file entry `e`, which must be the entry last yielded; None (and
        a log line) when that name is no longer the regular file the scan saw."""
        folder = self.stack[-1][1]
        name = e["p"].rpartition("/")[2]
        try:
            probe = os.open(name, _PROBE_FLAGS, dir_fd=folder)
        except FileNotFoundError:
            return None
        try:
            st = os.fstat(probe)
            if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (self.dev, e["i"]):
                self.log(f"rsync: skipping {e['p']}: it was replaced while the backup read it "
                         f"(now {_kind(st.st_mode)})")
                return None
            try:
                return os.open(f"/proc/self/fd/{probe}", os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:   # no /proc: the same checks on a non-blocking open
                return self._open_without_proc(folder, name, e)
        finally:
            os.close(probe)

    def _open_without_proc(self, folder, name, e):
        try:
            fd = os.open(name, _FALLBACK_FLAGS, dir_fd=folder)
        except OSError as err:
            self.log(f"rsync: skipping {e['p']} ({err.strerror})")
            return None
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) == (self.dev, e["i"]):
            return fd
        os.close(fd)
        self.log(f"rsync: skipping {e['p']}: it was replaced while the backup read it")
        return None

    def close(self) -> None:
        for _, fd, _ in self.stack:
            os.close(fd)
        self.stack = []


def _kind(mode):
    return {stat.S_IFLNK: "a symlink", stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a device",
            stat.S_IFBLK: "a device", stat.S_IFDIR: "a folder", stat.S_IFSOCK: "a socket"}.get(
                stat.S_IFMT(mode), "another file")


def read_capped(fd: int, size: int, block: int = BLOCK) -> Iterator[bytes]:
    """At most `size` bytes of fd, from its start: a file that grows while it is read (or is
    swapped for an endless one) cannot make the backup read forever."""
    offset = 0
    while offset < size:
        chunk = os.pread(fd, min(block, size - offset), offset)
        if not chunk:
            return
        offset += len(chunk)
        yield chunk
