"""Tar in and out of a root folder: tar_stream produces an archive while it is read (headers
and file data from descriptors, never a whole file in memory), untar reads one sequentially and
refuses members that would leave the folder (absolute, '..', links out), devices and FIFOs.
Every path goes through file_access.paths, so a symlink planted in the folder is archived as a
link and never followed on the way in or out."""
import os
import stat
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from core.errors import BadRequest, Forbidden, NotFound
from file_access.paths import (
    CHUNK,
    DIR_FLAGS,
    fail,
    folder,
    mkdir_at,
    open_regular,
    open_root,
    parent,
    parts,
    walk,
    write_into,
)

# --- tar out -----------------------------------------------------------------------------------

def _header(name: str, st: os.stat_result, kind: bytes, size: int = 0, linkname: str = "") -> bytes:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.mode = stat.S_IMODE(st.st_mode)
    info.mtime = int(st.st_mtime)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.linkname = linkname
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _file_member(fd: int, name: str, arcname: str, rel: str) -> Iterator[bytes]:
    try:
        ffd = open_regular(fd, name, rel)
    except (Forbidden, NotFound):
        return  # replaced by something else while archiving: left out
    with os.fdopen(ffd, "rb") as f:
        st = os.fstat(ffd)
        yield _header(arcname, st, tarfile.REGTYPE, st.st_size)
        left = st.st_size
        while left > 0:
            chunk = f.read(min(CHUNK, left)) or b"\0" * min(CHUNK, left)  # shrank meanwhile: zeros
            left -= len(chunk)
            yield chunk
        pad = -st.st_size % tarfile.BLOCKSIZE
        if pad:
            yield b"\0" * pad


def _members(fd: int, name: str, arcname: str, rel: str) -> Iterator[bytes]:
    try:
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISREG(st.st_mode):
        yield from _file_member(fd, name, arcname, rel)
    elif stat.S_ISLNK(st.st_mode):
        yield _header(arcname, st, tarfile.SYMTYPE, linkname=os.readlink(name, dir_fd=fd))
    elif stat.S_ISDIR(st.st_mode):
        try:
            sub = os.open(name, DIR_FLAGS, dir_fd=fd)
        except OSError:
            return
        try:
            yield _header(arcname + "/", st, tarfile.DIRTYPE)
            for child in sorted(os.listdir(sub)):
                yield from _members(sub, child, f"{arcname}/{child}", f"{rel}/{child}")
        finally:
            os.close(sub)
    # devices, FIFOs and sockets are left out


def tar_stream(root: str, rel: str) -> Iterator[bytes]:
    """rel as a tar stream, produced while read: a file as one member named after it, a folder
    as its contents (members relative to it, './' first). Symlinks are archived as links."""
    names = parts(rel)
    if names:
        with parent(root, rel) as (fd, name):
            try:
                os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError as e:
                raise fail(e, rel) from None
    return _tar_generator(root, rel, names)


def _tar_generator(root: str, rel: str, names: list[str]) -> Iterator[bytes]:
    with folder(root, "/".join(names[:-1])) as parent_fd:
        if names:
            st = os.stat(names[-1], dir_fd=parent_fd, follow_symlinks=False)
        if names and not stat.S_ISDIR(st.st_mode):
            yield from _members(parent_fd, names[-1], names[-1], rel)
        else:
            fd = os.open(names[-1], DIR_FLAGS, dir_fd=parent_fd) if names else os.dup(parent_fd)
            try:
                yield _header(".", os.fstat(fd), tarfile.DIRTYPE)
                for child in sorted(os.listdir(fd)):
                    yield from _members(fd, child, f"./{child}", f"{rel}/{child}")
            finally:
                os.close(fd)
    yield b"\0" * (tarfile.BLOCKSIZE * 2)


# --- tar in ------------------------------------------------------------------------------------

def _inside(base: list[str], target: str) -> bool:
    """Whether a relative link target, seen from folder `base`, stays inside the root."""
    if target.startswith("/"):
        return False
    depth = list(base)
    for p in target.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if not depth:
                return False
            depth.pop()
        else:
            depth.append(p)
    return True


def untar(root: str, rel: str, stream: BinaryIO, limit: int) -> int:
    """Extracts the tar `stream` (read sequentially, gzip or plain) into the folder rel (created
    if missing). Members leaving the folder, absolute or escaping links, hard links out,
    devices and FIFOs are refused with BadRequest. At most `limit` bytes of file content.
    Returns the bytes of file content written."""
    base = parts(rel)
    root_fd = open_root(root)
    try:
        dest = walk(root_fd, base, rel, create=True)
    finally:
        os.close(root_fd)
    written = 0
    try:
        try:
            archive = tarfile.open(fileobj=stream, mode="r|*")
        except tarfile.TarError as e:
            raise BadRequest(f"Not a tar archive: {e}") from None
        with archive:
            for member in archive:
                written = _extract(dest, archive, member, limit, written)
    except tarfile.TarError as e:
        raise BadRequest(f"Bad tar archive: {e}") from None
    finally:
        os.close(dest)
    return written


def _extract(dest: int, archive, member, limit: int, written: int) -> int:
    names = parts(member.name)  # '..' anywhere is refused here
    if member.name.startswith("/"):
        raise BadRequest(f"Archive member has an absolute path: {member.name}")
    if not names:
        return written  # './' itself
    shown = "/".join(names)
    if member.isdev() or member.isfifo():
        raise BadRequest(f"Archive member is a device or FIFO: {shown}")
    if member.issym() and not _inside(names[:-1], member.linkname):
        raise BadRequest(f"Archive member links out of the folder: {shown} -> {member.linkname}")
    fd = walk(dest, names[:-1], shown, create=True)
    name = names[-1]
    try:
        if member.isdir():
            try:
                mkdir_at(fd, name)
            except FileExistsError:
                pass
            return written
        _remove_non_dir(fd, name, shown)
        try:
            if member.issym():
                os.symlink(member.linkname, name, dir_fd=fd)
            elif member.islnk():
                target = parts(member.linkname)
                if not target:
                    raise BadRequest(f"Archive member links out of the folder: {shown}")
                with _parent_fd(dest, target, member.linkname) as (tfd, tname):
                    os.link(tname, name, src_dir_fd=tfd, dst_dir_fd=fd, follow_symlinks=False)
            elif member.isreg():
                return write_into(fd, name, archive.extractfile(member), limit,
                                   stat.S_IMODE(member.mode) & 0o777, shown, written)
        except OSError as e:
            raise fail(e, shown) from None
        return written
    finally:
        os.close(fd)


@contextmanager
def _parent_fd(dest: int, names: list[str], shown: str):
    fd = walk(dest, names[:-1], shown)
    try:
        yield fd, names[-1]
    finally:
        os.close(fd)


def _remove_non_dir(fd: int, name: str, shown: str) -> None:
    try:
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        raise BadRequest(f"A folder is in the way of archive member: {shown}")
    os.unlink(name, dir_fd=fd)


