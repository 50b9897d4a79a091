"""Files under a root folder, reached without ever following a symlink out of it.

Why file descriptors everywhere: an app (or anyone with a shell in it) can plant a symlink in its
own data folder pointing at the host's /etc. A path string joined and checked with realpath() is
open to races and to links planted in intermediate folders. Here every path is walked one
component at a time from a descriptor of the root with `O_NOFOLLOW | O_DIRECTORY` (openat-style,
`os.open(..., dir_fd=...)`), and the last component is opened, created, renamed or removed
relative to its parent's descriptor, again without following it. A symlink anywhere inside is
therefore a plain entry: it is listed and can be deleted or renamed, never traversed or read
through.

Errors are core.errors: NotFound (no such entry), Forbidden (a symlink or a non-folder in the
way, the root itself where an entry is needed), BadRequest (a bad path, a limit passed, a bad
archive), Conflict (the entry already exists).
"""

import errno
import os
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import BinaryIO

from core.errors import BadRequest, Conflict
from file_access.archive import tar_stream, untar
from file_access.paths import (
    DIR_FLAGS,
    fail,
    folder,
    mkdir_at,
    open_regular,
    open_root,
    parent,
    parts,
    write_into,
)

__all__ = ["list_dir", "entry", "open_file", "write_file", "make_dir", "rename", "delete", "tar_stream",
           "untar", "copy", "chown", "parts"]

def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "file"


def _describe(name: str, st: os.stat_result, fd: int | None = None) -> dict:
    out = {"name": name, "type": _kind(st.st_mode), "size": st.st_size,
           "mode": stat.S_IMODE(st.st_mode),
           "mtime": datetime.fromtimestamp(st.st_mtime, timezone.utc).isoformat().replace("+00:00", "Z"),
           "uid": st.st_uid, "gid": st.st_gid}
    if fd is not None and stat.S_ISLNK(st.st_mode):
        try:
            out["target"] = os.readlink(name, dir_fd=fd)  # shown, never followed
        except OSError:
            pass
    return out


def entry(root: str, rel: str) -> dict:
    """What rel is (name, type, size, mode, mtime), the entry itself, never a symlink's target."""
    names = parts(rel)
    if not names:
        with folder(root, "") as fd:
            return _describe("", os.fstat(fd))
    with parent(root, rel) as (fd, name):
        try:
            return _describe(name, os.stat(name, dir_fd=fd, follow_symlinks=False), fd)
        except OSError as e:
            raise fail(e, rel) from None


def list_dir(root: str, rel: str) -> list[dict]:
    """The entries of the folder rel, sorted by name; symlinks are listed as symlinks."""
    with folder(root, rel) as fd:
        out = []
        for name in sorted(os.listdir(fd)):
            try:
                out.append(_describe(name, os.stat(name, dir_fd=fd, follow_symlinks=False), fd))
            except FileNotFoundError:
                continue  # removed while listing
        return out


def open_file(root: str, rel: str) -> tuple:
    """(binary file object, size) of the regular file rel; the caller closes it."""
    with parent(root, rel) as (fd, name):
        ffd = open_regular(fd, name, rel)
    return os.fdopen(ffd, "rb"), os.fstat(ffd).st_size


def write_file(root: str, rel: str, stream: BinaryIO, limit: int) -> int:
    """Writes the file rel from `stream` (anything with .read(n)), at most `limit` bytes,
    creating missing parent folders; returns the bytes written."""
    with parent(root, rel, create=True) as (fd, name):
        return write_into(fd, name, stream, limit, 0o644, rel)


def make_dir(root: str, rel: str) -> None:
    """Creates the folder rel (and missing parents); Conflict if rel exists."""
    with parent(root, rel, create=True) as (fd, name):
        try:
            mkdir_at(fd, name)
        except OSError as e:
            raise fail(e, rel) from None


def rename(root: str, rel: str, new_rel: str) -> None:
    """Renames rel to new_rel (both inside the root); the entry itself moves, links stay links."""
    with parent(root, rel) as (src_fd, src), parent(root, new_rel) as (dst_fd, dst):
        try:
            os.rename(src, dst, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
        except OSError as e:
            raise fail(e, new_rel if e.errno in (errno.EEXIST, errno.ENOTEMPTY) else rel) from None


def delete(root: str, rel: str, recursive: bool) -> None:
    """Removes the entry rel (a symlink itself, never its target); a folder with content only
    when recursive (shutil.rmtree with dir_fd walks by descriptors and does not follow links)."""
    with parent(root, rel) as (fd, name):
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                os.unlink(name, dir_fd=fd)
            elif recursive:
                shutil.rmtree(name, dir_fd=fd)
            else:
                os.rmdir(name, dir_fd=fd)
        except OSError as e:
            raise fail(e, rel) from None


# --- copy and owner ----------------------------------------------------------------------------

class _IterReader:
    """A read(n) file object over an iterator of bytes (tar_stream into untar)."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks, self._buf = chunks, b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buf += chunk
        out, self._buf = (self._buf, b"") if n < 0 else (self._buf[:n], self._buf[n:])
        return out


def copy(root: str, rel: str, new_rel: str, limit: int) -> int:
    """Copies the file or folder rel to new_rel (Conflict if it exists); links are copied as
    links, and one pointing out of the root makes the copy fail. Returns the bytes copied."""
    if parts(new_rel)[: len(parts(rel))] == parts(rel):
        raise BadRequest("Cannot copy a folder into itself")
    with parent(root, new_rel) as (fd, name):
        try:
            os.stat(name, dir_fd=fd, follow_symlinks=False)
            raise Conflict(f"Already exists: {new_rel}")
        except FileNotFoundError:
            pass
    if entry(root, rel)["type"] == "directory":
        return untar(root, new_rel, _IterReader(iter(tar_stream(root, rel))), limit)
    f, _size = open_file(root, rel)
    with f:
        return write_file(root, new_rel, f, limit)


def chown(root: str, rel: str, uid: int, gid: int, recursive: bool) -> None:
    """Changes the owner of rel (never a link's target), and of everything below when recursive."""
    with parent(root, rel) if parts(rel) else _root_entry(root) as (fd, name):
        try:
            os.chown(name, uid, gid, dir_fd=fd, follow_symlinks=False)
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if recursive and stat.S_ISDIR(st.st_mode):
                sub = os.open(name, DIR_FLAGS, dir_fd=fd)
                try:
                    for _top, dirs, files, top_fd in os.fwalk(".", dir_fd=sub, follow_symlinks=False):
                        for child in dirs + files:
                            os.chown(child, uid, gid, dir_fd=top_fd, follow_symlinks=False)
                finally:
                    os.close(sub)
        except OSError as e:
            raise fail(e, rel) from None


@contextmanager
def _root_entry(root: str):
    fd = open_root(root)
    try:
        yield fd, "."
    finally:
        os.close(fd)
