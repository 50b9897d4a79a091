"""rsync backups: one object per file under `<remote>/files/` (large files: content-defined
chunks under `<remote>/chunks/`, see chunking.py), plus an index (rsync_index).

A file whose size, mtime, ctime and inode match the previous backup's index is not read: its
previous object or chunks are server-side copied (a hard link on the filesystem provider). A file
that changed is read; a small one whose sha256 matches is copied too, a large one uploads only
the chunks the previous backup of it does not have (an append to a log: the last one or two).
With a key, objects, chunks and index are encrypted, objects are named by an HMAC of their path
and chunks by an HMAC of their content, so file names and content are hidden too; the key's salt
is carried over from the previous backup, so the same content keeps the same chunk name.

The source is an app's data folder, which the app (hostile, maybe root in its container) can
change while it is read. So the scan walks folders on descriptors opened with O_NOFOLLOW, and
every file it is going to read is opened at once, relative to its folder's descriptor, without
following a symlink and without opening anything but the regular file (device, inode) the scan
has just seen; reads stop at the scanned size. A symlink, FIFO or device swapped in is logged and
left out: never followed, it cannot leak a host file, hang the backup or fill the disk (security
review, finding 2).
"""
import concurrent.futures
import hashlib
import os
import stat
import threading
from collections import deque
from collections.abc import Iterator

from backup_storage import Storage, StorageError
from backups.formats import chunking
from backups.formats.checksums import ChecksumWriter
from backups.formats.dirfds import DIR_FLAGS
from backups.formats.encryption import Encrypter, Keyring
from backups.formats.rsync_index import INDEX, IndexWriter, PreviousFiles, object_name
from backups.formats.streams import BLOCK, Counted, Log, Progress, mb

# O_PATH: a descriptor that names the inode without opening it (a device's driver is never
# called); the file is then opened through /proc/self/fd, which is that very inode, not a name
# that could be swapped in between.
_PROBE_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_FALLBACK_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_SKIP = object()


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


def pack_rsync(src_dir: str, storage: Storage, remote: str, key: str | None, previous: str | None, log: Log,
               concurrency: int) -> dict:
    return _Pack(src_dir, storage, remote, key, log, concurrency).run(previous)


class _Pack:
    def __init__(self, src_dir, storage, remote, key, log, concurrency):
        self.src_dir, self.storage, self.remote, self.log = src_dir, storage, remote, log
        self.keyring = Keyring(key) if key else None
        self.name_key = None
        self.progress = Progress(log, "rsync")
        self.stats = {"uploaded": 0, "uploadedFiles": 0, "copied": 0, "copiedFiles": 0, "files": 0,
                      "uploadedChunks": 0, "copiedChunks": 0}
        self.lock = threading.Lock()
        self.concurrency = max(1, concurrency)
        self.vanished = set()
        self.reused = set()   # suffixes of the objects linked from the previous backup
        self.prev = self.sums = self.index = self.chunks = None
        self.listed = set()   # chunks already in the checksum list (each is listed once)
        self.batch = None     # (future, [(entry, previous entry)]) of unchanged files not yet submitted
        self.batch_size = 32

    def run(self, previous):
        self.prev = PreviousFiles(self.storage, previous, self.keyring, self.log)
        if self.keyring is not None:
            if self.prev.salt is not None:
                self.keyring.salt = self.prev.salt
            self.name_key = self.keyring.name_key()
        self.chunks = chunking.ChunkStore(self.storage, self.remote, self.keyring, self.stats, self.lock)
        self.sums = ChecksumWriter("rsync", self.keyring)
        index_path = f"{self.remote}/{INDEX}" + (".enc" if self.keyring else "")
        try:
            with concurrent.futures.ThreadPoolExecutor(self.concurrency, thread_name_prefix="rsync") as pool, \
                    self.storage.writer(index_path, durable=False) as out:
                self.index = IndexWriter(out, self.keyring)
                self._walk(pool)
                self.index.close()
            index_sum = [index_path[len(self.remote):], self.index.counted.size, self.index.counted.sha.hexdigest()]
            self.sums.add(*index_sum)
            checksums = self.sums.commit(self.storage, self.remote, files=self.stats["files"], index=index_sum)
        finally:
            self.sums.close()
            self.prev.close()
        stats = self.stats
        uploaded = stats["uploaded"] + self.index.counted.size
        self.progress(f"done: {stats['files']} files, {mb(uploaded)} uploaded, {stats['copiedFiles']} "
                      "unchanged files copied", force=True)
        return {"format": "rsync", "remote": self.remote, "size": self.sums.size, "uploadedBytes": uploaded,
                "files": stats["files"], "checksums": checksums, "encrypted": bool(self.keyring),
                "uploadedFiles": stats["uploadedFiles"], "copiedFiles": stats["copiedFiles"],
                "copiedBytes": stats["copied"], "indexBytes": self.index.counted.size,
                "uploadedChunks": stats["uploadedChunks"], "copiedChunks": stats["copiedChunks"],
                # Objects linked or copied from the previous backup, not written by this one: the
                # verify stage checks their presence and size, not their bytes again.
                "reused": sorted(self.reused | self.chunks.reused)}

    def _walk(self, pool):
        # Entries are written to the index and checksum list in scan order, each once its object
        # is stored; a bounded window of them (each holding at most one open file) is in flight.
        window = min(max(64, 16 * self.concurrency), 512)
        self.batch_size = window // 2
        scan = Scan(self.src_dir, self.log)
        pending = deque()
        try:
            for e in scan:
                started = self._start(e, scan, pool)
                if started is not _SKIP:
                    pending.append((e, *started))
                while pending and (len(pending) > window or pending[0][1] is None or pending[0][1].done()):
                    if len(pending) > window:
                        self._flush(pool)
                    self._settle(*pending.popleft())
                self.progress(lambda: f"{self.stats['files']} files, {mb(self.stats['uploaded'])} uploaded, "
                                      f"{self.stats['copiedFiles']} unchanged")
            self._flush(pool)
            while pending:
                self._settle(*pending.popleft())
        finally:
            scan.close()
            for _, fut, fd in pending:
                if fut is not None and fut.cancel() and fd is not None:
                    os.close(fd)

    def _start(self, e, scan, pool):
        """(future or None, descriptor the future owns or None), or _SKIP for a file gone."""
        if e["t"] != "f":
            return None, None
        old = self.prev.find(e["p"]) if self.prev.cur is not None else None
        old_refs = self._old_chunks(old)
        if old is not None and "c" in old and old["c"] and not old_refs:
            old = None   # its chunk list does not hold up: read the file again
        if old is not None and all(old.get(k) == e[k] for k in ("s", "mt", "ct", "i")):
            # rsync's quick check: same size, mtime, ctime and inode -> unchanged.
            if self.storage.cheap_copy:
                # A hard link (~40 us here) costs less than a thread task of its own, but the
                # links of 16k unchanged files were half of an incremental backup: they go to the
                # pool in batches, so they run while this thread scans on.
                return self._batched(e, old, pool), None
            return pool.submit(self._reuse, e, old), None
        fd = scan.open_file(e)
        if fd is None:
            self.vanished.add(e["p"])
            return _SKIP
        try:
            if e["s"] >= chunking.CHUNKED_FROM:
                return pool.submit(self._chunked, e, old_refs, fd), fd
            same_size = old is not None and old["s"] == e["s"] and "o" in old
            return pool.submit(self._check, e, old if same_size else None, fd), fd
        except BaseException:
            os.close(fd)
            raise

    def _batched(self, e, old, pool):
        """A future for the reuse of `e`, shared by a batch of them submitted together."""
        if self.batch is None:
            self.batch = (concurrent.futures.Future(), [])
        fut, items = self.batch
        items.append((e, old))
        if len(items) >= self.batch_size:
            self._flush(pool)
        return fut

    def _flush(self, pool):
        if self.batch is None:
            return
        fut, items = self.batch
        self.batch = None

        def run():
            if not fut.set_running_or_notify_cancel():
                return
            try:
                for e, old in items:
                    self._reuse(e, old)
            except BaseException as err:  # noqa: B902 - handed to whoever settles the batch
                fut.set_exception(err)
            else:
                fut.set_result(None)
        pool.submit(run)

    def _settle(self, e, fut, _fd):
        if fut is not None:
            e = fut.result() or e   # a batch's future has no result: its entries were updated
        if e["t"] == "f" and "c" in e:
            for name, _, size, sha in e["c"]:
                if name not in self.listed:
                    self.listed.add(name)
                    self.sums.add("/" + chunking.chunk_path(name), size, sha)
        elif e["t"] == "f":
            self.sums.add("/" + e["o"], e["os"], e["oh"])
        elif e["t"] == "h" and e["l"] in self.vanished:
            return
        if e["t"] != "d":
            self.stats["files"] += 1   # as for tgz: every entry that is not a folder
        self.index.add(e)

    def _old_chunks(self, old):
        """{name: ref} of the chunks the previous backup holds of this file ({} when it has none
        or its list does not hold up)."""
        if old is None or "c" not in old:
            return {}
        try:
            return {ref[0]: ref for ref in chunking.check_refs(old["c"], old.get("s"))}
        except StorageError as err:
            self.log(f"rsync: the previous backup's chunk list of {old['p']} is unusable ({err})")
            return {}

    def _reuse(self, e, old):
        if "c" in old:   # checked by _old_chunks in _start
            e["c"] = [self.chunks.link(self.prev.remote, ref) for ref in old["c"]]
            with self.lock:
                self.stats["copiedFiles"] += 1
            return e
        e.update(h=old["h"], os=old["os"], oh=old["oh"], o=object_name(e["p"], self.name_key))
        self.storage.copy(f"{self.prev.remote}/{old['o']}", f"{self.remote}/{e['o']}")
        with self.lock:
            self.stats["copied"] += old["os"]
            self.stats["copiedFiles"] += 1
            self.reused.add("/" + e["o"])
        return e

    def _check(self, e, old, fd):
        try:
            if old is not None:
                # Same size but other metadata (touch, restore, chmod): compare the content.
                sha = hashlib.sha256()
                for chunk in read_capped(fd, e["s"]):
                    sha.update(chunk)
                if sha.hexdigest() == old["h"]:
                    return self._reuse(e, old)
            return self._upload(e, fd)
        finally:
            os.close(fd)

    def _upload(self, e, fd):
        e["o"] = object_name(e["p"], self.name_key)
        sha = hashlib.sha256()
        size = 0
        with self.storage.writer(f"{self.remote}/{e['o']}", durable=False) as out:
            counted = Counted(out)
            sink = Encrypter(counted, self.keyring) if self.keyring else counted
            for chunk in read_capped(fd, e["s"]):
                sha.update(chunk)
                size += len(chunk)
                sink.write(chunk)
            if self.keyring:
                sink.close()
        if size != e["s"] or os.fstat(fd).st_size != e["s"]:
            self.log(f"rsync: warning: {e['p']} changed size while it was read ({size} bytes kept)")
            e["s"] = size
        e.update(h=sha.hexdigest(), os=counted.size, oh=counted.sha.hexdigest())
        with self.lock:
            self.stats["uploaded"] += counted.size
            self.stats["uploadedFiles"] += 1
        return e

    def _chunked(self, e, old_refs, fd):
        """A large file that changed (or is new): cut into chunks, each linked from the previous
        backup when it has it, else stored."""
        try:
            refs, size = [], 0
            for data in chunking.cut(fd, e["s"]):
                name = chunking.name_of(data, self.chunks.key)
                ref = old_refs.get(name)
                if ref is not None and ref[1] == len(data):
                    refs.append(self.chunks.link(self.prev.remote, ref))
                else:
                    refs.append(self.chunks.put(data, name))
                size += len(data)
            if size != e["s"] or os.fstat(fd).st_size != e["s"]:
                self.log(f"rsync: warning: {e['p']} changed size while it was read ({size} bytes kept)")
                e["s"] = size
            e["c"] = refs
            with self.lock:
                self.stats["uploadedFiles"] += 1
            return e
        finally:
            os.close(fd)
