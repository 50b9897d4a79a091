"""rsync backups (index version 4): the content of every file in the storage's shared object
store (object_store.py: a small file is one object, a large one its content-defined chunks, see
chunking.py), plus the backup's own index (rsync_index) and reference list.

A file whose size, mtime, ctime and inode match the previous backup's index is not read, and
nothing is written for it: its index line carries the previous backup's references over (a
version 3 previous backup: its chunks are hard-linked or server-side copied into the store once).
A file that changed is read; a small one whose content the previous backup has is reused, a large
one stores only the chunks the store does not have (an append to a log: the last one or two).
Changed files are read in a thread pool, except a small one among many unchanged (see _Inline),
which the scan reads itself; the index is written in scan order, entries waiting behind files
being read.
With a key, objects and index are encrypted and objects are named by keyed hashes of their
content, so file names and content are hidden; the key's salt is carried over from the previous
backup, so the same content keeps the same object name.

The source is an app's data folder, which the app (hostile, maybe root in its container) can
change while it is read. So the scan (rsync_scan.py) walks folders on descriptors opened with
O_NOFOLLOW, and every file it is going to read is opened at once, relative to its folder's
descriptor, without following a symlink and without opening anything but the regular file
(device, inode) the scan has just seen; reads stop at the scanned size. A symlink, FIFO or device
swapped in is logged and left out: never followed, it cannot leak a host file, hang the backup or
fill the disk (security review, finding 2).
"""
import concurrent.futures
import hashlib
import os
import threading
import time
from collections import deque

from backup_storage import Storage, StorageError
from backups.formats import chunking, jsonl, object_store
from backups.formats.checksums import ChecksumWriter
from backups.formats.encryption import Keyring
from backups.formats.rsync_index import INDEX, IndexWriter, PreviousFiles, old_object
from backups.formats.rsync_scan import Scan, read_capped
from backups.formats.streams import Counted, Log, Progress, mb

# Entries ready to be written wait behind a file being read, to keep the index in scan order.
# They hold no descriptor, only their encoded line (a few hundred bytes: 65,536 of them, ~20 MB),
# so the scan goes on past a large file being read instead of waiting for it: measured with the
# realistic change of bench/backups.py (1 MB appended to a 257 MB log early in the tree), a limit
# of 1,024 left the scan waiting for the log for half of the backup's time.
BACKLOG = 65_536

class _Inline:
    """Whether the scan thread reads a changed small file itself rather than handing it to the
    pool. Measured on 2 cores (bench/backups.py, the realistic change): pool threads reading a few
    hundred small files scattered through the tree competed with the scan for the GIL and the
    CPU, and the incremental backup took 30% longer than with the scan reading them itself. A
    backup where many files changed (the first one) needs the threads' parallel hashing, though,
    and a slow storage (S3, a network mount) their parallel writes. So only files under MAX_SIZE,
    while at most one in SHARE of the files scanned so far was read, and while reading one this
    way takes under SLOW seconds on average."""

    MAX_SIZE = 256 << 10
    SHARE = 8
    SLOW = 0.001

    def __init__(self) -> None:
        self.read = 0        # files read so far, here or in the pool
        self.count, self.spent = 0, 0.0    # read here, and the time that took

    def wanted(self, size: int, scanned: int) -> bool:
        if size > self.MAX_SIZE or (self.read + 1) * self.SHARE > scanned + 1:
            return False
        return self.count < 8 or self.spent < self.SLOW * self.count

    def took(self, seconds: float) -> None:
        self.read += 1
        self.count += 1
        self.spent += seconds


def pack_rsync(src_dir: str, storage: Storage, remote: str, key: str | None, previous: str | None, log: Log,
               concurrency: int) -> dict:
    return _Pack(src_dir, storage, remote, key, log, concurrency).run(previous)


class _Pack:
    def __init__(self, src_dir, storage, remote, key, log, concurrency):
        self.src_dir, self.storage, self.remote, self.log = src_dir, storage, remote, log
        self.keyring = Keyring(key) if key else None
        self.progress = Progress(log, "rsync")
        self.stats = {"uploaded": 0, "uploadedFiles": 0, "copied": 0, "copiedFiles": 0, "files": 0,
                      "uploadedObjects": 0, "uploadedChunks": 0, "copiedChunks": 0}
        self.lock = threading.Lock()
        self.concurrency = max(1, concurrency)
        self.vanished = set()
        self.prev = self.index = self.objects = self.refs = None

    def run(self, previous):
        self.prev = PreviousFiles(self.storage, previous, self.keyring, self.log)
        if self.keyring is not None and self.prev.salt is not None:
            self.keyring.salt = self.prev.salt   # same salt, same object names: unchanged content is reused
        self.objects = object_store.Objects(self.storage, self.keyring, self.stats, self.lock)
        sums = ChecksumWriter("rsync", self.keyring)
        index_path = f"{self.remote}/{INDEX}" + (".enc" if self.keyring else "")
        refs_path = f"{self.remote}/{object_store.REFS}"
        # Registered before the first object is written: a sweep leaves the store alone meanwhile.
        root = object_store.Root(self.storage, self.remote)
        root.start()
        try:
            with concurrent.futures.ThreadPoolExecutor(self.concurrency, thread_name_prefix="rsync") as pool, \
                    self.storage.writer(index_path, durable=False) as out, \
                    self.storage.writer(refs_path, durable=False) as refs_out:
                refs_counted = Counted(refs_out)
                self.index = IndexWriter(out, self.keyring)
                self.refs = object_store.Refs(refs_counted)
                try:
                    self._walk(pool)
                except BaseException:
                    self.index.abort()
                    raise
                self.index.close()
                self.refs.close()
            sums.add("/" + object_store.REFS, refs_counted.size, refs_counted.sha.hexdigest())
            index_sum = [index_path[len(self.remote):], self.index.counted.size, self.index.counted.sha.hexdigest()]
            sums.add(*index_sum)
            referenced = self.refs.stored
            checksums = sums.commit(self.storage, self.remote, files=self.stats["files"], index=index_sum,
                                    extra={"store": object_store.STORE, "referencedBytes": referenced})
        finally:
            root.stop()
            sums.close()
            self.prev.close()
        stats = self.stats
        uploaded = stats["uploaded"] + self.index.counted.size + refs_counted.size
        self.progress(f"done: {stats['files']} files, {mb(uploaded)} uploaded, {stats['copiedFiles']} "
                      "unchanged files reused", force=True)
        return {"format": "rsync", "remote": self.remote, "size": sums.size + referenced, "uploadedBytes": uploaded,
                "files": stats["files"], "checksums": checksums, "encrypted": bool(self.keyring),
                "uploadedFiles": stats["uploadedFiles"], "copiedFiles": stats["copiedFiles"],
                "copiedBytes": stats["copied"], "indexBytes": self.index.counted.size, "refsBytes": refs_counted.size,
                "uploadedObjects": stats["uploadedObjects"],
                "uploadedChunks": stats["uploadedChunks"], "copiedChunks": stats["copiedChunks"],
                # Objects this backup references but did not write: the verify stage checks their
                # presence and size, not their bytes again (read back when they were written).
                "reused": sorted(n for n in self.refs.names if n not in self.objects.written)}

    def _walk(self, pool):
        # Entries are written to the index in scan order, each once its objects are stored; a
        # bounded window of files being read (each holding one open file) is in flight. An
        # unchanged file (the common case) needs no thread: its previous references are its own.
        window = min(max(64, 16 * self.concurrency), 512)
        scan = Scan(self.src_dir, self.log)
        pending = deque()
        counts = self.counts = {"files": 0, "reused": 0, "reusedChunks": 0}
        inline = _Inline() if self.prev.cur is not None else None
        inflight = 0
        try:
            for e in scan:
                item = self._entry(e, scan, pool, inline)
                if item is None:
                    continue
                if item[1] is not None:
                    inflight += 1
                    pending.append(item)
                elif pending:
                    pending.append(item)
                else:
                    self._settle(*item)
                while pending and (inflight > window or len(pending) > BACKLOG or pending[0][1] is None
                                   or pending[0][1].done()):
                    item = pending.popleft()
                    inflight -= item[1] is not None
                    self._settle(*item)
                if not counts["files"] & 255:
                    self.progress(lambda f=counts["files"], r=counts["reused"]:
                                  f"{f} files, {mb(self.stats['uploaded'])} uploaded, {r} unchanged")
            while pending:
                self._settle(*pending.popleft())
        finally:
            scan.close()
            for _, fut, fd in pending:    # a future's third item is the descriptor it owns
                if fut is not None and fut.cancel() and fd is not None:
                    os.close(fd)
        self.stats["files"] = counts["files"]
        self.stats["copiedFiles"] += counts["reused"]
        self.stats["copiedChunks"] += counts["reusedChunks"]

    def _entry(self, e, scan, pool, inline):
        """What to write for scanned entry `e`: (None, None, its index line) when it is ready,
        (entry, future, the descriptor the future owns) for a file being read in the pool, or
        None to leave it out (a file gone, a hard link to one)."""
        counts = self.counts
        if e["t"] != "f":
            if e["t"] == "h" and e["l"] in self.vanished:
                return None
            counts["files"] += e["t"] != "d"   # as for tgz: every entry that is not a folder
            return None, None, jsonl.dumps(e)
        prev = self.prev
        old = prev.find(e["p"]) if prev.cur is not None else None
        if (prev.in_store and old is not None and old["s"] == e["s"] and old["mt"] == e["mt"]
                and old.get("ct") == e["ct"] and old.get("i") == e["i"] and "c" in old):
            # rsync's quick check: same size, mtime, ctime and inode -> unchanged.
            e["c"] = old["c"]
            counts["files"] += 1
            counts["reused"] += 1
            if e["s"] >= chunking.CHUNKED_FROM:
                counts["reusedChunks"] += len(e["c"])
            # The reference list is a set (its order is free): listed now, even when the entry
            # waits behind a file being read.
            self.refs.add(e["c"])
            # An entry equal to the previous one (the usual case: a chmod or chown changes ctime)
            # is written as the line it was stored as, not encoded again.
            return None, None, (prev.line if old == e else jsonl.dumps(e))
        if inline is not None and inline.wanted(e["s"], counts["files"]):
            done = self._read_inline(e, old, scan, inline)
            if done is None:
                return None
            counts["files"] += 1
            self.refs.add(done["c"])
            return None, None, jsonl.dumps(done)
        started = self._start(e, old, scan, pool)
        if started is None:
            return None
        counts["files"] += 1
        if inline is not None:
            inline.read += 1
        return (e, *started)

    def _read_inline(self, e, old, scan, inline):
        """File entry `e` read and stored on the scan thread (see _Inline), or None when gone."""
        fd = scan.open_file(e)
        if fd is None:
            self.vanished.add(e["p"])
            return None
        started = time.perf_counter()
        done = self._small(e, old, fd)
        inline.took(time.perf_counter() - started)
        return done

    def _start(self, e, old, scan, pool):
        """(future, descriptor the future owns) of a file to read, or None for a file gone."""
        fd = scan.open_file(e)
        if fd is None:
            self.vanished.add(e["p"])
            return None
        try:
            if e["s"] >= chunking.CHUNKED_FROM:
                return pool.submit(self._chunked, e, self._old_chunks(old), fd), fd
            return pool.submit(self._small, e, old, fd), fd
        except BaseException:
            os.close(fd)
            raise

    def _settle(self, e, fut, line):
        """Write an entry to the index: file `e` read by `fut` once it is done (its references
        listed then), or a ready entry's `line`."""
        if fut is None:
            self.index.add_line(line)
            return
        e = fut.result()
        if e["t"] == "f":
            self.refs.add(e["c"])
        self.index.add(e)

    def _old_chunks(self, old):
        """The previous backup's chunk references of this file in order, checked ([] when it has
        none or its list does not hold up)."""
        if old is None or "c" not in old:
            return []
        try:
            return chunking.check_refs(old["c"], old.get("s"))
        except StorageError as err:
            self.log(f"rsync: the previous backup's chunk list of {old['p']} is unusable ({err})")
            return []

    def _again(self, ref):
        """A chunk the previous backup holds, for this one: its reference as it is (version 4), or
        linked into the store from the previous backup's folder (version 3)."""
        if self.prev.in_store:
            return ref
        return self.objects.link(f"{self.prev.remote}/{chunking.chunk_path(ref[0])}", ref)

    def _small(self, e, old, fd):
        """A small file that changed, is new, or was backed up by a version 2 or 3 backup: one
        object, stored unless the previous backup (or the store) has the same content."""
        try:
            data = b"".join(read_capped(fd, e["s"]))
            self._check_size(e, fd, len(data))
            name = chunking.name_of(data, self.objects.key) if data else None
            same = [r for r in self._old_chunks(old) if r[0] == name and r[1] == len(data)]
            if same:   # touched, chmod'ed, restored: the content is the one the previous backup has
                e["c"] = [self._again(same[0])]
            elif data and old_object(old) and old.get("h") == hashlib.sha256(data).hexdigest():
                # The same content in a version 2 or 3 backup's own object: linked into the store.
                ref = [name, len(data), old["os"], old["oh"]]
                e["c"] = [self.objects.link(f"{self.prev.remote}/{old['o']}", ref)]
            else:
                e["c"] = [self.objects.put(data, name)] if data else []
                with self.lock:
                    self.stats["uploadedFiles"] += 1
                return e
            with self.lock:
                self.stats["copiedFiles"] += 1
            return e
        finally:
            os.close(fd)

    def _check_size(self, e, fd, size):
        if size != e["s"] or os.fstat(fd).st_size != e["s"]:
            self.log(f"rsync: warning: {e['p']} changed size while it was read ({size} bytes kept)")
            e["s"] = size

    def _chunked(self, e, old_refs, fd):
        """A large file that changed (or is new): cut into chunks, each reused when the previous
        backup has it, else stored. Chunks of the previous backup's list are first checked in
        place: while the start of the file is unchanged (an append, an edit near the end) each is
        hashed over its old range without being cut; cutting starts at the first that differs, or
        at the last one (it ended at the old end of the file, not at a cut). Content-defined cuts
        depend only on the bytes from the chunk's start, so the result is the same as cutting the
        whole file, for half the work."""
        try:
            key = self.objects.key
            refs, offset, copied = [], 0, 0
            buf = bytearray(chunking.MAX) if len(old_refs) > 1 else None
            for ref in old_refs[:-1]:
                data = chunking.read_at(fd, offset, ref[1], buf)
                if len(data) != ref[1] or offset + ref[1] > e["s"] or chunking.name_of(data, key) != ref[0]:
                    break
                refs.append(self._again(ref))
                offset += ref[1]
                copied += 1
            by_name = {ref[0]: ref for ref in old_refs}
            for data in chunking.cut(fd, e["s"] - offset, offset):
                name = chunking.name_of(data, key)
                ref = by_name.get(name)
                if ref is not None and ref[1] == len(data):
                    refs.append(self._again(ref))
                    copied += 1
                else:
                    refs.append(self.objects.put(data, name))
                    with self.lock:
                        self.stats["uploadedChunks"] += 1
                offset += len(data)
            self._check_size(e, fd, offset)
            e["c"] = refs
            with self.lock:
                self.stats["uploadedFiles"] += 1
                self.stats["copiedChunks"] += copied
            return e
        finally:
            os.close(fd)
