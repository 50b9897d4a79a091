"""Walking a path under a root by file descriptors, never following a symlink (see tree.py
for why), and the one mapping of OSError to API errors. Shared by tree.py and archive.py."""
import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from core.errors import ApiError, BadRequest, Conflict, Forbidden, NotFound

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
CHUNK = 64 * 1024


def parts(rel: str) -> list[str]:
    """The components of a path relative to the root; '' or '/' is the root itself."""
    if "\0" in rel:
        raise BadRequest("must not contain NUL", "path")
    names = [p for p in rel.split("/") if p not in ("", ".")]
    if ".." in names:
        raise BadRequest("must not contain '..'", "path")
    return names


def fail(exc: OSError, rel: str) -> ApiError:
    """The API error for an OSError met while walking or acting on `rel`."""
    if exc.errno == errno.ENOENT:
        return NotFound(f"No such file or folder: {rel or '/'}")
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EACCES, errno.EPERM, errno.EXDEV):
        return Forbidden(f"Not allowed: {rel or '/'} (a symlink or a file is in the way)")
    if exc.errno == errno.EEXIST:
        return Conflict(f"Already exists: {rel}")
    if exc.errno == errno.ENOTEMPTY:
        return BadRequest(f"Folder is not empty: {rel}")
    if exc.errno == errno.EISDIR:
        return BadRequest(f"Is a folder: {rel}")
    return BadRequest(f"{rel or '/'}: {exc.strerror}")


def open_root(root: str) -> int:
    # The root is Berth's own path (the app's data folder); it is opened as given.
    try:
        return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise NotFound(f"The folder does not exist: {e.strerror}") from None


def mkdir_at(fd: int, name: str, mode: int = 0o755) -> None:
    """mkdir, then the mode set on the new folder itself: Berth runs with umask 077 (its data dir
    is private), but an app's process that is not root must still be able to enter the folder."""
    os.mkdir(name, mode, dir_fd=fd)
    new = os.open(name, DIR_FLAGS, dir_fd=fd)
    try:
        os.fchmod(new, mode)
    finally:
        os.close(new)


def walk(root_fd: int, names: list[str], rel: str, create: bool = False) -> int:
    """A new descriptor of the folder root/names..., each step without following symlinks."""
    fd = os.dup(root_fd)
    try:
        for name in names:
            try:
                nxt = os.open(name, DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    mkdir_at(fd, name)
                except FileExistsError:
                    pass
                nxt = os.open(name, DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
        return fd
    except OSError as e:
        os.close(fd)
        raise fail(e, rel) from None


@contextmanager
def parent(root: str, rel: str, create: bool = False) -> Iterator[tuple[int, str]]:
    """(descriptor of the parent folder, last name) of a path that must not be the root."""
    names = parts(rel)
    if not names:
        raise Forbidden("Not allowed on the root folder itself")
    root_fd = open_root(root)
    try:
        fd = walk(root_fd, names[:-1], rel, create)
    finally:
        os.close(root_fd)
    try:
        yield fd, names[-1]
    finally:
        os.close(fd)


@contextmanager
def folder(root: str, rel: str) -> Iterator[int]:
    """A descriptor of the folder at rel (the root for '')."""
    root_fd = open_root(root)
    try:
        fd = walk(root_fd, parts(rel), rel)
    finally:
        os.close(root_fd)
    try:
        yield fd
    finally:
        os.close(fd)


def open_regular(fd: int, name: str, rel: str) -> int:
    # O_NONBLOCK: opening a planted FIFO must not hang the worker; it is refused below.
    try:
        ffd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd)
    except OSError as e:
        raise fail(e, rel) from None
    st = os.fstat(ffd)
    if not stat.S_ISREG(st.st_mode):
        os.close(ffd)
        if stat.S_ISDIR(st.st_mode):
            raise BadRequest(f"Is a folder: {rel}")
        raise Forbidden(f"Not a regular file: {rel}")
    os.set_blocking(ffd, True)
    return ffd


def copy_limited(stream: BinaryIO, out_fd: int, limit: int, written: int = 0) -> int:
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            return written
        written += len(chunk)
        if written > limit:
            raise BadRequest(f"Upload is larger than {limit} bytes")
        view = memoryview(chunk)
        while view:
            view = view[os.write(out_fd, view):]


def write_into(fd: int, name: str, stream: BinaryIO, limit: int, mode: int, rel: str, budget_used: int = 0) -> int:
    """Streams into a temporary file beside `name`, then renames it over `name` (which replaces a
    symlink or file there, never writes through it). Returns the new total of bytes written."""
    try:
        existing = os.stat(name, dir_fd=fd, follow_symlinks=False)
        if stat.S_ISDIR(existing.st_mode):
            raise BadRequest(f"Is a folder: {rel}")
    except FileNotFoundError:
        pass
    tmp = f".{name[:200]}.berth-upload-{os.getpid()}-{id(stream)}"
    try:
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=fd)
    except OSError as e:
        raise fail(e, rel) from None
    try:
        try:
            total = copy_limited(stream, out, limit, budget_used)
            os.fchmod(out, mode)
        finally:
            os.close(out)
        os.rename(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
    except BaseException as e:
        try:
            os.unlink(tmp, dir_fd=fd)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise fail(e, rel) from None
        raise
    return total


