"""How a directory tree becomes a backup on a Storage, and comes back: the tgz, zstd and rsync formats.

tgz (tgz.py): one archive object `<remote>.tar.gz` (`.tar.gz.enc` with a key), made by GNU tar
  and compressed in-process in parallel gzip members; restore streams it into `tar -x`.
zstd (zstd.py): the same with `<remote>.tar.zst` (`.tar.zst.enc`), compressed by multi-threaded
  zstd level 1 (several times faster); tgz's packing and restore steps, another codec.
rsync (rsync.py, rsync_restore.py, rsync_index.py, chunking.py, object_store.py): the content
  of every file in the storage's shared, content-addressed object store (`objects/`: a small
  file is one object, a file of 4 MiB or more its content-defined chunks), plus the backup's
  index (`<remote>/index.jsonl.gz`: one JSON line per entry with mode, owner, mtime, symlink
  target, hard link and the file's object references; version 4) and its reference list
  (`<remote>/refs.bin`). An unchanged file is not read and costs nothing but its index line, so a
  backup costs what changed. Removing a backup leaves the objects; `sweep` (cleanup) deletes
  those no backup references. Versions 2 and 3 (objects under each backup's own folder) are
  still restored and serve as the previous backup. Scan, previous index and new index are
  streams in one order, so memory grows only with the number of distinct objects named.

A checksum list (checksums.py, `<remote>.checksums.json`: a summary, then size and sha256 of each
stored object) is written LAST, after everything else is durable (syncfs on the filesystem
provider); a backup without one is incomplete and is never restored. With a key it is
authenticated (an HMAC with a key derived from the backup key).

Encryption (encryption.py): scrypt, per-object AES-256-GCM keys, 1 MiB chunks that cannot be
reordered, dropped or truncated unnoticed; a wrong key is reported (WrongKey) before anything is
restored.

Restores never trust the backup: entries are created on folder descriptors without following
symlinks (dirfds.py), device nodes and setuid/setgid bits of app data do not come back unless the
caller says the data is trusted (`privileged=True`), and a caller that knows whether the backup
was encrypted passes `expect_encrypted`, so one swapped for an unencrypted one in the storage is
refused (BackupRefused) before anything is written.
"""
import contextlib
import os
from collections.abc import Iterable, Iterator

from backup_storage import Storage, StorageError
from backups.formats import object_store
from backups.formats.checksums import CHECKSUMS, BackupRefused, ChecksumList, check_stored, read_checksums
from backups.formats.encryption import CHUNK, HEADER, MAGIC, TAG, Keyring, WrongKey
from backups.formats.object_store import sweep
from backups.formats.rsync import pack_rsync
from backups.formats.rsync_index import INDEX
from backups.formats.rsync_restore import unpack_rsync
from backups.formats.streams import BLOCK, Log, blocks, read_exact
from backups.formats.tgz import archive_path, pack_tgz, unpack_tgz
from backups.formats.zstd import archive_path as zstd_archive_path
from backups.formats.zstd import pack_zstd, unpack_zstd

__all__ = ["ARCHIVES", "BLOCK", "CHECKSUMS", "CHUNK", "HEADER", "INDEX", "MAGIC", "TAG", "BackupRefused",
           "Keyring", "WrongKey", "archive_path", "download_stream", "pack", "read_checksums", "remove", "sweep",
           "unpack", "verify"]

# Formats stored as one archive object: its path for (remote, encrypted).
ARCHIVES = {"tgz": archive_path, "zstd": zstd_archive_path}


def pack(fmt: str, src_dir: str, storage: Storage, remote: str, key: str | None = None, previous: str | None = None,
         log: Log = print, concurrency: int = 4) -> dict:
    """Back up `src_dir` to `remote` on `storage` (see module docstring). Returns
    {format, remote, size (bytes stored), uploadedBytes, files (entries that are not folders),
    checksums (path of the list), encrypted, uploadedFiles, copiedFiles, ...}.

    On failure nothing of this backup stays visible (best effort removal) and StorageError is raised."""
    if not os.path.isdir(src_dir):
        raise StorageError(f"backup source {src_dir} is not a folder")
    if fmt not in ("tgz", "zstd", "rsync"):
        raise ValueError(f"unknown backup format {fmt!r}")
    remote = remote.strip("/")
    if storage.provider == "noop":
        log(f"{fmt}: noop storage keeps nothing; skipping the upload")
        return {"format": fmt, "remote": remote, "size": 0, "uploadedBytes": 0, "files": 0,
                "checksums": remote + CHECKSUMS, "encrypted": bool(key), "uploadedFiles": 0, "copiedFiles": 0}
    try:
        if fmt == "tgz":
            return pack_tgz(src_dir, storage, remote, key, log, concurrency)
        if fmt == "zstd":
            return pack_zstd(src_dir, storage, remote, key, log, concurrency)
        return pack_rsync(src_dir, storage, remote, key, previous, log, concurrency)
    except BaseException:
        with contextlib.suppress(Exception):
            remove(fmt, storage, remote)
        raise


def unpack(fmt: str, storage: Storage, remote: str, dest_dir: str, key: str | None = None, log: Log = print,
           concurrency: int = 4, *, expect_encrypted: bool | None = None, privileged: bool = False) -> dict:
    """Restore backup `remote` into `dest_dir` (absent or empty): exact bytes, modes, owners (as
    root), mtimes, symlinks. Checksums are verified while reading.

    expect_encrypted: whether Berth recorded the backup as encrypted; a backup whose checksum list
      says otherwise is refused (BackupRefused) before anything is written. None: not known.
    privileged: the data is trusted (not an app's): device nodes and setuid/setgid bits come back
      as they were. By default device nodes are left out and setuid/setgid cleared on files.

    WrongKey (missing or wrong key) and BackupRefused are raised before anything is written; on
    any later failure dest_dir is emptied again and StorageError raised."""
    remote = remote.strip("/")
    if os.path.isdir(dest_dir) and os.listdir(dest_dir):
        raise StorageError(f"restore target {dest_dir} is not empty")
    if os.path.exists(dest_dir) and not os.path.isdir(dest_dir):
        raise StorageError(f"restore target {dest_dir} is not a folder")
    if fmt == "tgz":
        return unpack_tgz(storage, remote, dest_dir, key, log, expect_encrypted, privileged)
    if fmt == "zstd":
        return unpack_zstd(storage, remote, dest_dir, key, log, expect_encrypted, privileged)
    if fmt == "rsync":
        return unpack_rsync(storage, remote, dest_dir, key, log, concurrency, expect_encrypted, privileged)
    raise ValueError(f"unknown backup format {fmt!r}")


def verify(fmt: str, storage: Storage, remote: str, key: str | None = None, full: bool = True, concurrency: int = 4,
           *, expect_encrypted: bool | None = None, reused: Iterable[str] = ()) -> dict:
    """Re-read every stored object of the backup and check size and sha256 against its checksum
    list (full=False: presence and size only). With a key, also checks the key opens it and the
    list's MAC. Returns {"objects", "size"}; StorageError on any mismatch or missing object.
    Passes at once on noop storage.

    `reused`: suffixes of objects this backup did not write but linked (hard link, server-side
    copy) from the previous backup, as pack's result lists them: their bytes are those the
    previous backup's verify read back, so only their presence and size are checked. That keeps
    an incremental backup's verify at the cost of what changed, not a re-read of everything.
    For an rsync backup of the shared object store (version 4) these are object names, and the
    objects are those of its reference list (object_store.verify_objects)."""
    remote = remote.strip("/")
    if storage.provider == "noop":
        return {"objects": 0, "size": 0}   # nothing was kept, so nothing can be wrong
    reused = frozenset(reused)
    with ChecksumList(storage, remote, fmt) as cl:
        cl.check_expected(expect_encrypted)
        keyring = None
        if key and cl.encrypted:
            keyring = cl.open(key)
            first = ARCHIVES[fmt](remote, True) if fmt in ARCHIVES else remote + cl.header["index"][0]
            with storage.reader(first) as r:   # just the header: WrongKey before anything else
                keyring.open_header(read_exact(r, HEADER.size), f"backup {remote}")
        in_store = fmt == "rsync" and cl.header.get("store") == object_store.STORE

        listed = ((suffix, remote + suffix, size, sha) for suffix, size, sha in cl.entries())
        count, total = check_stored(storage, listed, full, reused, concurrency, "checksum list")
        if count != cl.header["objects"]:
            raise StorageError(f"{remote}{CHECKSUMS}: lists {count} objects, its summary says "
                               f"{cl.header['objects']}")
        if in_store:
            objects, size = object_store.verify_objects(storage, remote, keyring, cl.encrypted, full,
                                                        concurrency, reused)
            count, total = count + objects, total + size
    return {"objects": count, "size": total}


def remove(fmt: str, storage: Storage, remote: str) -> None:
    """Delete every object of the backup; the checksum list goes first, so a half-deleted backup
    is never taken for a complete one."""
    remote = remote.strip("/")
    storage.remove(remote + CHECKSUMS)
    if fmt in ARCHIVES:
        storage.remove(ARCHIVES[fmt](remote, True))
        storage.remove(ARCHIVES[fmt](remote, False))
    else:
        # Its own folder; objects of the shared store stay for the sweep (others may use them).
        storage.remove_prefix(remote)
        storage.remove(object_store.root_path(remote))


def download_stream(fmt: str, storage: Storage, remote: str, block: int = BLOCK) -> Iterator[bytes]:
    """The stored tgz or zstd archive as is (encrypted if the backup is), as an iterator of bytes."""
    remote = remote.strip("/")
    if fmt not in ARCHIVES:
        raise StorageError("only tgz and zstd backups can be downloaded as one file")
    cl = read_checksums(storage, remote)
    if cl is None:
        raise StorageError(f"backup {remote} is incomplete or missing: it has no checksum list")
    if cl.get("format") != fmt:
        raise StorageError(f"backup {remote} is a {cl.get('format')} backup, not {fmt}")
    with storage.reader(ARCHIVES[fmt](remote, cl.get("encrypted"))) as r:
        yield from blocks(r, block)
