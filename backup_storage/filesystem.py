"""The filesystem provider: backups in a folder of this host (a local disk, an external disk, or
a network filesystem mounted by the admin).

Objects are files below the root (backupFolder); each is written under a temporary name and
renamed when complete, so a crash never leaves a half-written object under its final name.
Every failure is a StorageError with the OS's own message ("No space left on device").

The root is never created by probe(): a folder that does not exist is refused ("does not exist;
create it first"), so a config (or, before activation, anyone) cannot make Berth create folders
as root anywhere. The one exception is Berth's own default folder (`backups` in the data dir).
Which folders may be used at all is host_paths' rule; probe() checks the folder it opened.
"""
import contextlib
import ctypes
import errno
import os
import secrets
import shutil
from collections.abc import Iterator

from backup_storage import host_paths
from backup_storage.base import PROBE_PREFIX, TMP_PREFIX, Readable, Storage, StorageError, Writable, clean_path
from core import data_paths

# Opening the root folder fails with these when it is missing (or a file, or a symlink loop):
# all are reported as "does not exist", so a probe says no more about other paths than that.
_MISSING = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)


# The most one write() hands the kernel. Measured with bench/backups.py's zstd backup (ext4 on a
# 2-vCPU VM): libzstd's output came in pieces of up to 11 MB, and written as they came, the backup
# spent 1.3-1.6 s of kernel time where 1 MiB writes of the same bytes took 0.5 s (3.4-4.3 s
# against 2.6 s in all).
WRITE_PIECE = 1 << 20


class _Guarded:
    """File-like whose OSErrors become StorageError with the OS's message."""

    def __init__(self, f, what):
        self._f, self._what = f, what

    def write(self, data):
        try:
            if len(data) <= WRITE_PIECE:
                return self._f.write(data)
            view = memoryview(data)
            for start in range(0, len(view), WRITE_PIECE):
                self._f.write(view[start:start + WRITE_PIECE])
            return len(view)
        except OSError as e:
            raise StorageError(f"{self._what}: {e.strerror or e}") from e

    def read(self, n=-1):
        try:
            return self._f.read(n)
        except OSError as e:
            raise StorageError(f"{self._what}: {e.strerror or e}") from e


def _oserror(action, path, e):
    return StorageError(f"Cannot {action} {path}: {e.strerror or e}")


class FilesystemStorage(Storage):
    provider = "filesystem"

    def __init__(self, root: str, no_hardlinks: bool = False, external_disk: bool = False,
                 create_root: bool = False) -> None:
        self.root = os.path.abspath(root)
        self.no_hardlinks = no_hardlinks
        self.external_disk = external_disk
        self.create_root = create_root    # probe() may create the root (Berth's default folder only)
        self.cheap_copy = not no_hardlinks
        self._made = set()    # folders known to exist: saves a mkdir per object in rsync backups
        self._disk_checked = False

    @classmethod
    def from_config(cls, cfg: dict) -> "FilesystemStorage":
        """The storage of a validated filesystem config."""
        root = cfg["backupFolder"]
        return cls(root, no_hardlinks=bool(cfg.get("noHardlinks")), external_disk=bool(cfg.get("externalDisk")),
                   create_root=os.path.normpath(root) == os.path.normpath(data_paths.default_backups()))

    def _full(self, path, allow_empty=False):
        rel = clean_path(path, allow_empty)
        return os.path.join(self.root, rel) if rel else self.root

    def _makedirs(self, folder):
        if folder in self._made:
            return
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as e:
            raise _oserror("create", folder, e) from e
        self._made.add(folder)

    def _check_disk(self, root_dev=None):
        if not self.external_disk or self._disk_checked:
            return
        # An unmounted external disk leaves an empty folder on the root filesystem: refuse it rather
        # than fill the system disk with backups.
        if root_dev is None:
            probe = self.root
            while not os.path.exists(probe):
                probe = os.path.dirname(probe)
            root_dev = os.stat(probe).st_dev
        if root_dev == os.stat("/").st_dev:
            raise StorageError(f"{self.root} is not on a mounted external disk "
                               "(it is on the root filesystem)")
        self._disk_checked = True

    def _open_root(self):
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
        try:
            return os.open(self.root, flags)
        except OSError as e:
            if e.errno == errno.ENOENT and self.create_root:
                try:
                    os.mkdir(self.root, 0o700)
                    return os.open(self.root, flags)
                except OSError as again:
                    raise _oserror("create", self.root, again) from again
            if e.errno in _MISSING:
                raise StorageError(f"{self.root} does not exist; create it first") from None
            raise _oserror("open", self.root, e) from e

    def probe(self) -> None:
        root = self._open_root()
        try:
            host_paths.check_opened_folder(root, "backupFolder")
            self._check_disk(os.fstat(root).st_dev)
            name = f"{PROBE_PREFIX}{secrets.token_hex(8)}"
            data = secrets.token_bytes(64)
            where = os.path.join(self.root, name)
            # Only ever a new file of our own: no following a planted symlink, no reuse.
            flags = os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                fd = os.open(name, os.O_WRONLY | flags, 0o600, dir_fd=root)
            except OSError as e:
                raise _oserror("write", where, e) from e
            try:
                with open(fd, "wb") as f:
                    _Guarded(f, f"Cannot write {where}").write(data)
                with open(os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=root), "rb") as f:
                    back = _Guarded(f, f"Cannot read {where}").read()
            except OSError as e:
                raise _oserror("probe", where, e) from e
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=root)
        finally:
            os.close(root)
        if back != data:
            raise StorageError(f"{self.root}: the probe object read back differs from what was written")

    @contextlib.contextmanager
    def writer(self, path: str, durable: bool = True) -> Iterator[Writable]:
        full = self._full(path)
        folder = os.path.dirname(full)
        self._check_disk()
        self._makedirs(folder)
        # The temporary name is short and fixed-length so it never exceeds NAME_MAX even when
        # the object's own name is 255 bytes long.
        tmp = os.path.join(folder, TMP_PREFIX + secrets.token_hex(8))
        opener = lambda p, fl: os.open(p, fl, 0o600)  # noqa: E731 (backups hold secrets)
        try:
            try:
                f = open(tmp, "xb", opener=opener)
            except FileNotFoundError:
                # The folder was removed behind our back (another storage object pruned it).
                self._made.discard(folder)
                self._makedirs(folder)
                f = open(tmp, "xb", opener=opener)
        except OSError as e:
            raise _oserror("write", full, e) from e
        done = False
        try:
            yield _Guarded(f, f"Cannot write {full}")
            try:
                f.flush()
                if durable:
                    os.fsync(f.fileno())
                f.close()
                os.rename(tmp, full)
                done = True
                if durable:
                    _fsync_dir(folder)
            except OSError as e:
                raise _oserror("write", full, e) from e
        finally:
            if not done:
                with contextlib.suppress(OSError):
                    f.close()
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    @contextlib.contextmanager
    def reader(self, path: str) -> Iterator[Readable]:
        full = self._full(path)
        try:
            f = open(full, "rb")
        except OSError as e:
            raise _oserror("read", full, e) from e
        with f:
            yield _Guarded(f, f"Cannot read {full}")

    def exists(self, path: str) -> bool:
        return os.path.isfile(self._full(path))

    def size(self, path: str) -> int:
        full = self._full(path)
        try:
            return os.stat(full).st_size
        except OSError as e:
            raise _oserror("read", full, e) from e

    def list(self, prefix: str = "") -> list[str]:
        base = self._full(prefix, allow_empty=True)
        rel = clean_path(prefix, allow_empty=True)
        out = []
        if not os.path.isdir(base):
            return out
        stack = [(base, rel)]
        try:
            while stack:
                folder, relfolder = stack.pop()
                with os.scandir(folder) as it:
                    for entry in it:
                        name = entry.name
                        if name.startswith(TMP_PREFIX):
                            continue
                        path = f"{relfolder}/{name}" if relfolder else name
                        if entry.is_dir(follow_symlinks=False):
                            stack.append((entry.path, path))
                        elif entry.is_file(follow_symlinks=False):
                            out.append(path)
        except OSError as e:
            raise _oserror("list", base, e) from e
        out.sort()
        return out

    def _prune_parents(self, full):
        # Leave no empty folders behind removed objects (up to, not including, the root).
        self._made.clear()
        folder = os.path.dirname(full)
        while folder.startswith(self.root + os.sep):
            try:
                os.rmdir(folder)
            except OSError:
                return
            folder = os.path.dirname(folder)

    def remove(self, path: str) -> None:
        full = self._full(path)
        try:
            os.unlink(full)
        except FileNotFoundError:
            return
        except OSError as e:
            raise _oserror("remove", full, e) from e
        self._prune_parents(full)

    def remove_prefix(self, prefix: str) -> None:
        full = self._full(prefix)   # an empty prefix (the whole root) is refused by clean_path
        if os.path.isdir(full) and not os.path.islink(full):
            def fail(func, p, exc):
                e = exc if isinstance(exc, BaseException) else exc[1]
                if not isinstance(e, FileNotFoundError):
                    raise _oserror("remove", p, e) from e
            shutil.rmtree(full, onerror=fail)
        elif os.path.lexists(full):
            self.remove(prefix)
            return
        self._prune_parents(full)

    def copy(self, src: str, dst: str) -> None:
        s, d = self._full(src), self._full(dst)
        folder = os.path.dirname(d)
        self._makedirs(folder)
        if not self.no_hardlinks:
            try:
                # A link appears complete at once: no temporary name needed.
                os.link(s, d)
                return
            except FileExistsError:
                tmp = os.path.join(folder, TMP_PREFIX + secrets.token_hex(8))
                try:
                    os.link(s, tmp)
                    os.rename(tmp, d)
                    return
                except OSError as e:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
                    raise _oserror("link", d, e) from e
            except FileNotFoundError as e:
                if not os.path.isdir(folder):   # removed behind our back: forget the cache
                    self._made.discard(folder)
                    self._makedirs(folder)
                    return self.copy(src, dst)
                raise _oserror("link", s, e) from e
            except OSError as e:
                # Filesystems without hard links (or at the link limit) fall back to a real copy.
                if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP):
                    raise _oserror("link", d, e) from e
        with self.reader(src) as fin, self.writer(dst, durable=False) as fout:
            while True:
                chunk = fin.read(1 << 20)
                if not chunk:
                    break
                fout.write(chunk)

    def create(self, path: str, data: bytes) -> bool:
        full = self._full(path)
        folder = os.path.dirname(full)
        self._check_disk()
        self._makedirs(folder)
        tmp = os.path.join(folder, TMP_PREFIX + secrets.token_hex(8))
        try:
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            except FileNotFoundError:   # the folder was pruned behind our back
                self._made.discard(folder)
                self._makedirs(folder)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view[:WRITE_PIECE]):]
            finally:
                os.close(fd)
            # A complete object appears at once, never over one: renameat2(RENAME_NOREPLACE), or
            # link() (which fails when the name exists) where that is not supported.
            done = _rename_noreplace(tmp, full)
            if done is not None:
                return done
            try:
                os.link(tmp, full)
                return True
            except FileExistsError:
                return False
            except OSError as e:
                if e.errno not in (errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP):
                    raise
                if os.path.lexists(full):   # no hard links here: check, then rename
                    return False
                os.rename(tmp, full)
                return True
        except OSError as e:
            raise _oserror("write", full, e) from e
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def local_path(self, path: str) -> str | None:
        return self._full(path)

    def sync(self) -> None:
        # One syncfs for the backup's filesystem instead of an fsync per object: rsync backups
        # write thousands of small objects.
        try:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as e:
            raise _oserror("sync", self.root, e) from e
        try:
            if _libc_syncfs is not None:
                if _libc_syncfs(fd) != 0:
                    err = ctypes.get_errno()
                    raise StorageError(f"Cannot sync {self.root}: {os.strerror(err)}")
            else:
                os.sync()
        finally:
            os.close(fd)


def _fsync_dir(folder):
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _rename_noreplace(src, dst):
    """True: renamed; False: `dst` exists (nothing renamed); None: not supported here."""
    if _libc_renameat2 is None:
        return None
    if _libc_renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
        return True
    err = ctypes.get_errno()
    if err == errno.EEXIST:
        return False
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return None
    raise OSError(err, os.strerror(err), dst)


_AT_FDCWD, _RENAME_NOREPLACE = -100, 1
try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _libc_syncfs = _libc.syncfs
    _libc_syncfs.argtypes = [ctypes.c_int]
except (OSError, AttributeError):
    _libc_syncfs = None
try:
    _libc_renameat2 = _libc.renameat2
    _libc_renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
except (NameError, AttributeError):
    _libc_renameat2 = None
