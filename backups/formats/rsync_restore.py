"""Restoring an rsync backup: the index is read in order; folders are created at once, files are
fetched on a thread pool, links and special files come after every file, folder metadata last.

Every entry is created relative to a descriptor of its parent folder, reached from the target one
component at a time with O_NOFOLLOW (dirfds.Walker), and no call follows a symlink: a crafted
index whose symlink `esc -> /etc` precedes `esc/cron.d/job` is refused instead of writing outside
the target (security review, finding 1). Hard link sources are resolved the same way. Device nodes
are skipped and setuid/setgid bits cleared unless the restore is `privileged` (dirfds).

A chunked file (index version 3) is its chunks in order: each reference is checked as hostile
input (chunking.check_refs: a name is a hash, never a path), each chunk's stored bytes against
the checksum list, and its plaintext against its name (BLAKE3, keyed with a key), so a
chunk swapped for another of the same backup is refused too. In a version 4 index every file is
a list of such references to the shared object store (object_store.py), checked the same way,
the stored size and sha256 against the reference itself (the index is vouched for by the
checksum list, whose MAC covers it when encrypted).
"""
import concurrent.futures
import hashlib
import itertools
import os
import stat
import threading
from collections import deque

from backup_storage import Storage, StorageError
from backups.formats import chunking, dirfds, object_store
from backups.formats.checksums import BackupRefused, ChecksumList
from backups.formats.encryption import Decrypter
from backups.formats.rsync_index import STORE_FROM, index_entries
from backups.formats.streams import Log, Progress, blocks, local_copy, mb

_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def unpack_rsync(storage: Storage, remote: str, dest_dir: str, key: str | None, log: Log, concurrency: int,
                 expect_encrypted: bool | None = None, privileged: bool = False) -> dict:
    with ChecksumList(storage, remote, "rsync") as cl:
        keyring = cl.open(key, expect_encrypted)
        return _Restore(storage, remote, dest_dir, keyring, log, concurrency, privileged).run(cl)


class _Restore:
    def __init__(self, storage, remote, dest_dir, keyring, log, concurrency, privileged):
        self.storage, self.remote, self.dest_dir = storage, remote, dest_dir
        self.keyring, self.log, self.privileged = keyring, log, privileged
        self.what = f"backup {remote}"
        self.root = os.geteuid() == 0
        self.concurrency = max(1, concurrency)
        self.progress = Progress(log, "rsync restore")
        self.stats = {"bytes": 0, "files": 0, "skipped": 0}
        self.lock = threading.Lock()
        self.folders, self.later = [], []
        self.walker = self.sources = None
        self.chunk_key = None
        self.listed = {}   # chunk name -> (stored size, sha256) from the checksum list
        self.in_store = False   # a version 4 index: file content is in the shared object store

    def run(self, cl):
        if self.keyring is not None:
            # Chunk names are HMACs with a key derived from the backup's own salt (its list's MAC
            # was just checked, so the salt is the one the backup was made with).
            self.keyring.salt = bytes.fromhex(cl.header["kdf"]["salt"])
            self.chunk_key = chunking.chunk_key(self.keyring)
        digest = hashlib.sha256()
        created = None
        ok = False
        try:
            suffix, index_size, index_sha = cl.header["index"]
            with local_copy(self.storage, self.remote + suffix, digest) as index_file:
                if index_file.seek(0, 2) != index_size or digest.hexdigest() != index_sha:
                    raise StorageError(f"{self.remote}{suffix}: checksum mismatch "
                                       "(the stored index was modified or corrupted)")
                index_file.seek(0)
                info = {}
                entries = index_entries(index_file, self.keyring, self.what, info)
                first = next(entries, None)   # decrypts the header: a wrong key stops here, dest untouched
                self.in_store = info.get("version", 0) >= STORE_FROM
                created = dirfds.prepare_dest(self.dest_dir)
                sums = cl.entries()
                self._restore(itertools.chain([first] if first else [], entries), sums)
                rest = list(sums)
                if self.in_store and len(rest) == 2 and rest[0][0] == "/" + object_store.REFS:
                    rest = rest[1:]
                if rest != [(suffix, index_size, index_sha)]:
                    raise StorageError(f"{self.what}: the checksum list does not match the index")
            ok = True
        except OSError as e:
            raise StorageError(f"restoring into {self.dest_dir}: {e.strerror or e}"
                               + (f" ({e.filename})" if e.filename else "")) from e
        except (KeyError, TypeError, ValueError) as e:
            # Fields of the wrong type or missing: an index that Berth did not write.
            raise BackupRefused(f"{self.what}: the index holds a malformed entry ({e!r})") from e
        finally:
            if not ok and created is not None:
                dirfds.clear_dest(self.dest_dir, created)
        if self.stats["skipped"]:
            self.log(f"rsync restore: {self.stats['skipped']} device node(s) not restored "
                     "(app data may not bring them back)")
        self.progress(f"done: {self.stats['files']} files, {mb(self.stats['bytes'])}", force=True)
        return {"format": "rsync", "remote": self.remote, "files": self.stats["files"],
                "restoredBytes": self.stats["bytes"]}

    def _restore(self, entries, sums):
        root_fd = os.open(self.dest_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.walker, self.sources = dirfds.Walker(root_fd), dirfds.Walker(root_fd)
        try:
            with concurrent.futures.ThreadPoolExecutor(self.concurrency, thread_name_prefix="restore") as pool:
                self._files(entries, sums, pool)
            # Links and special files come after every file is written, folders' metadata last,
            # deepest first: writing into a folder changes its mtime, and a read-only folder
            # would refuse its own files.
            for e in self.later:
                self._link_or_node(e)
            for e in reversed(self.folders):
                self._folder_meta(e)
        finally:
            self.walker.close()
            self.sources.close()
            os.close(root_fd)

    def _files(self, entries, sums, pool):
        pending = deque()
        try:
            for e in entries:
                t = e.get("t")
                if e["p"] == "." and t == "d":
                    self.folders.append(e)
                    continue
                rel = dirfds.safe_rel(e["p"])
                if t == "d":
                    parent, name = self.walker.parent(rel)
                    os.mkdir(name, 0o700, dir_fd=parent)
                    self.folders.append(e)
                elif t == "f":
                    pending.append(self._start_file(e, rel, sums, pool))
                    while len(pending) > 4 * self.concurrency or (pending and pending[0][0].done()):
                        pending.popleft()[0].result()
                    self.progress(lambda: f"{self.stats['files']} files, {mb(self.stats['bytes'])}")
                elif t in ("l", "h", "n"):
                    self.later.append(e)
                else:
                    raise BackupRefused(f"{self.what}: the index holds an entry of unknown type {t!r}")
            while pending:
                pending.popleft()[0].result()
        finally:
            for fut, fd in pending:
                if fut.cancel():
                    os.close(fd)

    def _start_file(self, e, rel, sums, pool):
        chunked = "c" in e or self.in_store
        obj = e.get("o")
        if obj is not None or not chunked:
            if not isinstance(obj, str) or not obj.startswith(("files/", "files-x/")):
                raise BackupRefused(f"{self.what}: the index names an object outside the backup: {obj!r}")
            dirfds.safe_rel(obj)
        if chunked:   # an object name beside chunks (or in a version 4 index) is refused there
            return self._start_chunked(e, rel, sums, pool)
        listed = next(sums, None)
        if listed is None or listed[0] != "/" + obj:
            raise StorageError(f"{self.what}: the checksum list does not match the index")
        parent, name = self.walker.parent(rel)
        fd = os.open(name, _NEW_FILE, 0o600, dir_fd=parent)
        try:
            return pool.submit(self._fetch, e, fd, listed[1], listed[2]), fd
        except BaseException:
            os.close(fd)
            raise

    def _fetch(self, e, fd, size_expected, sha_expected):
        path = f"{self.remote}/{e['o']}"
        stored, plain, size = hashlib.sha256(), hashlib.sha256(), 0
        dec = Decrypter(self.keyring, f"{self.what}: {e['p']}") if self.keyring else None
        with os.fdopen(fd, "wb") as out, self.storage.reader(path) as r:
            for raw in blocks(r):
                stored.update(raw)
                size += len(raw)
                for chunk in (dec.feed(raw) if dec else (raw,)):
                    plain.update(chunk)
                    out.write(chunk)
            if dec:
                chunk = dec.finish()
                plain.update(chunk)
                out.write(chunk)
            if size != size_expected or stored.hexdigest() != sha_expected or plain.hexdigest() != e["h"]:
                raise StorageError(f"{path}: checksum mismatch (the stored object was modified or corrupted)")
            out.flush()
            self._meta(out.fileno(), e, stat.S_IFREG)
        with self.lock:
            self.stats["bytes"] += e["s"]
            self.stats["files"] += 1

    def _start_chunked(self, e, rel, sums, pool):
        if "o" in e:
            raise BackupRefused(f"{self.what}: the index gives {e['p']!r} both an object and chunks")
        refs = chunking.check_refs(e.get("c"), e["s"])
        for name, _, size, sha in ([] if self.in_store else refs):
            path = "/" + chunking.chunk_path(name)
            if name not in self.listed:
                listed = next(sums, None)
                if listed is None or listed[0] != path:
                    raise StorageError(f"{self.what}: the checksum list does not match the index")
                self.listed[name] = (listed[1], listed[2])
            if self.listed[name] != (size, sha):
                raise StorageError(f"{self.what}: the checksum list does not match the index ({path})")
        parent, name = self.walker.parent(rel)
        fd = os.open(name, _NEW_FILE, 0o600, dir_fd=parent)
        try:
            return pool.submit(self._fetch_chunks, e, refs, fd), fd
        except BaseException:
            os.close(fd)
            raise

    def _fetch_chunks(self, e, refs, fd):
        with os.fdopen(fd, "wb") as out:
            for name, plain_size, size_expected, sha_expected in refs:
                out.write(self._chunk(e, name, plain_size, size_expected, sha_expected))
            out.flush()
            self._meta(out.fileno(), e, stat.S_IFREG)
        with self.lock:
            self.stats["bytes"] += e["s"]
            self.stats["files"] += 1

    def _chunk(self, e, name, plain_size, size_expected, sha_expected):
        """The plaintext of one chunk, read whole (at most chunking.MAX bytes) and checked: stored
        size and sha256 as listed, plaintext as named."""
        path = None if self.in_store else f"{self.remote}/{chunking.chunk_path(name)}"
        return object_store.load(self.storage, name, self.keyring, self.chunk_key, f"{self.what}: {e['p']}",
                                 plain_size=plain_size, stored_size=size_expected, stored_sha=sha_expected,
                                 path=path)[0]

    def _meta(self, fd, e, kind):
        """Owner (as root), mode, mtime through a descriptor of the entry itself. chown first:
        it clears setuid/setgid, which chmod then sets when they may be restored."""
        if self.root:
            os.chown(fd, e["u"], e["g"])
        os.chmod(fd, dirfds.restored_mode(kind, e["m"], self.privileged))
        os.utime(fd, ns=(e["mt"], e["mt"]))

    def _folder_meta(self, e):
        fd = self.walker.folder("" if e["p"] == "." else e["p"])
        self._meta(fd, e, stat.S_IFDIR)

    def _link_or_node(self, e):
        rel = dirfds.safe_rel(e["p"])
        if e["t"] == "h":
            src_parent, src_name = self.sources.parent(dirfds.safe_rel(e["l"]))
            parent, name = self.walker.parent(rel)
            os.link(src_name, name, src_dir_fd=src_parent, dst_dir_fd=parent, follow_symlinks=False)
            return
        parent, name = self.walker.parent(rel)
        if e["t"] == "l":
            os.symlink(e["l"], name, dir_fd=parent)
            if self.root:
                os.chown(name, e["u"], e["g"], dir_fd=parent, follow_symlinks=False)
            os.utime(name, ns=(e["mt"], e["mt"]), dir_fd=parent, follow_symlinks=False)
            return
        kind = e["k"]
        if not dirfds.node_allowed(kind, self.privileged):
            if kind not in dirfds.DEVICES:
                raise BackupRefused(f"{self.what}: the index holds {e['p']!r} of unknown kind {kind!r}")
            self.stats["skipped"] += 1
            self.log(f"rsync restore: not restoring device node {e['p']}")
            return
        os.mknod(name, kind | 0o600, e.get("r", 0) if kind in dirfds.DEVICES else 0, dir_fd=parent)
        # A FIFO or device is never opened (that could block or reach a driver): by name, in the
        # folder descriptor, without following a symlink.
        if self.root:
            os.chown(name, e["u"], e["g"], dir_fd=parent, follow_symlinks=False)
        _chmod_node(name, dirfds.restored_mode(kind, e["m"], self.privileged), parent)
        os.utime(name, ns=(e["mt"], e["mt"]), dir_fd=parent, follow_symlinks=False)


def _chmod_node(name, mode, parent):
    try:
        os.chmod(name, mode, dir_fd=parent, follow_symlinks=False)
    except (NotImplementedError, ValueError):
        # An old C library without fchmodat(AT_SYMLINK_NOFOLLOW): the node was just created by
        # this restore in a folder it holds open, so the name is still that node.
        os.chmod(name, mode, dir_fd=parent)
