"""The rsync index (`<remote>/index.jsonl.gz`, `.enc` when keyed): one JSON line per entry, in one
order (depth first, names sorted: the order of path components), so the scan, the previous
backup's index, the new index and the checksum list are merged like sorted files and memory stays
flat whatever the number of files.

Entry fields: p path, t type (d folder, f file, l symlink, h hard link, n special file), m mode,
u/g owner, mt mtime (ns); files: s size, ct ctime, i inode, then either h sha256, o object name,
os/oh stored size and sha256 (a file stored as one object), or c its chunks (version 3, files of
chunking.CHUNKED_FROM bytes or more: [name, size, stored size, stored sha256] each; version 4:
every file, a small one as its one object, an empty one as []); l symlink target or hard link
source; special files: k file type, r device.

The first line is {"version": N}: 2 (one object per file under the backup), 3 (large files
chunked under the backup) or 4 (every file's content in the storage's shared object store,
object_store.py). All three are read; version 4 is written.
"""
import concurrent.futures
import hashlib
import hmac
import io
import os
import re
import zlib
from collections import deque
from collections.abc import Iterator

from backup_storage import Storage, StorageError
from backup_storage.base import Readable, Writable
from backups.formats import jsonl
from backups.formats.checksums import read_checksums
from backups.formats.chunking import MAX_STORED
from backups.formats.encryption import HEADER, Decrypter, Encrypter, Keyring, WrongKey
from backups.formats.streams import BLOCK, Counted, Gunzip, IterReader, Log, blocks, lines, local_copy

INDEX = "index.jsonl.gz"
VERSION = 4
READABLE = (2, 3, 4)
STORE_FROM = 4   # index versions whose chunk references name objects of the shared store
_UNSAFE_KEY = re.compile(r"[\x00-\x1f\x7f]")


def order_key(path: str) -> list[str]:
    return path.split("/")


def object_name(path: str, name_key: bytes | None) -> str:
    """Where a file's content is stored under the backup's remote path. With a key, an HMAC of
    the path: the storage never sees a file name."""
    if name_key is not None:
        digest = hmac.new(name_key, os.fsencode(path), "sha256").hexdigest()
        return f"files/{digest[:2]}/{digest[2:]}"
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:
        encoded = None
    if encoded is None or len(encoded) > 900 or _UNSAFE_KEY.search(path):
        # Names that are not UTF-8, hold control characters or are too long for an S3 key (1024
        # bytes) are stored under a digest; the index keeps the real name.
        return "files-x/" + hashlib.sha256(os.fsencode(path)).hexdigest()
    return "files/" + path


def old_object(old: dict | None) -> bool:
    """Whether `old` (an entry of a version 2 or 3 index: storage input) names an object of its
    own backup's folder that may be linked: `files/...` without '..', sizes and sha256 well-formed."""
    if old is None:
        return False
    obj, size, sha = old.get("o"), old.get("os"), old.get("oh")
    return (isinstance(obj, str) and obj.startswith(("files/", "files-x/")) and ".." not in obj.split("/")
            and "\0" not in obj and isinstance(size, int) and 0 < size <= MAX_STORED
            and isinstance(sha, str) and len(sha) == 64)


class IndexWriter:
    """The index as gzip'ed JSON lines (one entry per line), encrypted when keyed, streamed into
    a storage writer. Blocks are compressed, encrypted and written by a thread of its own (zlib,
    AES and the write release the GIL), so the scan goes on meanwhile: in an incremental backup
    of unchanged files the index is most of the work left."""

    def __init__(self, out: Writable, keyring: Keyring | None) -> None:
        self.counted = Counted(out)
        self.sink = Encrypter(self.counted, keyring) if keyring else self.counted
        self.gz = zlib.compressobj(1, zlib.DEFLATED, 31)
        self.buf, self.buffered = [], 0
        self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="rsync-index")
        self.jobs = deque()
        self.add({"version": VERSION})

    def add(self, entry: dict) -> None:
        self.add_line(jsonl.dumps(entry))

    def add_line(self, line: bytes) -> None:
        """Write an entry already encoded (jsonl.dumps, or an unchanged file's line of the
        previous index, which decoded to an entry equal to this one)."""
        line += b"\n"
        self.buf.append(line)
        self.buffered += len(line)
        if self.buffered >= BLOCK:
            self._compress()

    def _write(self, block):
        data = self.gz.compress(block)
        if data:
            self.sink.write(data)

    def _compress(self):
        block = b"".join(self.buf)
        self.buf, self.buffered = [], 0
        while len(self.jobs) >= 2:   # at most two blocks waiting: memory stays flat
            self.jobs.popleft().result()
        self.jobs.append(self.pool.submit(self._write, block))

    def abort(self) -> None:
        """Stop writing (the backup failed): the thread is done before the storage writer goes."""
        self.pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        try:
            self._compress()
            while self.jobs:
                self.jobs.popleft().result()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
        self.sink.write(self.gz.flush())
        if isinstance(self.sink, Encrypter):
            self.sink.close()


def index_entries(f: Readable, keyring: Keyring | None, what: str, info: dict | None = None) -> Iterator[dict]:
    """Entries of an index read from the binary stream f (decrypted when keyed); `info` gets the
    index's "version" once its first line is read."""
    return (entry for entry, _ in index_lines(f, keyring, what, info))


def index_lines(f: Readable, keyring: Keyring | None, what: str,
                info: dict | None = None) -> Iterator[tuple[dict, bytes]]:
    """(entry, its line as stored) of each entry, as index_entries."""
    dec = Decrypter(keyring, what) if keyring else None
    gunzip = Gunzip()

    def plain():
        for raw in blocks(f):
            for piece in (dec.feed(raw) if dec else (raw,)):
                yield from gunzip.feed(piece)
        if dec:
            yield from gunzip.feed(dec.finish())
        yield from gunzip.finish()

    rest = lines(io.BufferedReader(IterReader(plain())))
    try:
        first = jsonl.loads(next(rest, b"{}"))
        if not isinstance(first, dict) or first.get("version") not in READABLE:
            raise StorageError(f"{what}: not a Berth rsync index")
        if info is not None:
            info["version"] = first["version"]
        for line in rest:
            if line:
                entry = jsonl.loads(line)
                if not isinstance(entry, dict) or not isinstance(entry.get("p"), str):
                    raise ValueError("an entry is not an object with a path")
                yield entry, line
    except (ValueError, zlib.error) as e:
        raise StorageError(f"{what}: unreadable index ({e})") from e


class PreviousFiles:
    """The previous rsync backup's file entries, looked up in scan order (a merge, not a map)."""

    def __init__(self, storage: Storage, previous: str | None, keyring: Keyring | None, log: Log) -> None:
        self.entries, self.cur, self.remote = None, None, None
        self.line = None      # the stored line of the entry find() returned last
        self.log = log
        self.tmp = None
        self.salt = None      # the previous backup's key salt, once its index opened with the key
        self.failed = False
        self.info = {}        # {"version": N} of the previous index once it is open
        if not previous:
            return
        previous = previous.strip("/")
        try:
            self._open(storage, previous, keyring)
        except WrongKey:
            log("rsync: the encryption key changed since the previous backup; uploading everything")
            self.entries = self.cur = None
        except StorageError as e:
            log(f"rsync: previous backup {previous} is unusable ({e}); uploading everything")
            self.entries = self.cur = None

    def _open(self, storage, previous, keyring):
        cl = read_checksums(storage, previous)
        if cl is None or cl.get("format") != "rsync" or "index" not in cl:
            self.log(f"rsync: previous backup {previous} is not a complete rsync backup; uploading everything")
            return
        if bool(cl.get("encrypted")) != bool(keyring):
            self.log("rsync: the encryption setting changed since the previous backup; uploading everything")
            return
        suffix, _, sha = cl["index"]
        digest = hashlib.sha256()
        self.tmp = local_copy(storage, previous + suffix, digest)
        if digest.hexdigest() != sha:
            self.log(f"rsync: previous backup {previous} has a damaged index; uploading everything")
            return
        self.entries = index_lines(self.tmp, keyring, f"backup {previous}", self.info)
        self.remote = previous
        self._advance()
        if keyring is not None and not self.failed:
            # The salt in the header of the index just decrypted: the key check in it passed, so
            # the next backup may derive its keys (and chunk names) from the same salt.
            header = os.pread(self.tmp.fileno(), HEADER.size, 0)
            if len(header) == HEADER.size:
                self.salt = HEADER.unpack(header)[5]

    def _advance(self):
        try:
            while True:
                e, line = next(self.entries, (None, None))
                if e is None or e.get("t") == "f":
                    # its order key is made when it is needed
                    self.cur = (e, None, line) if e else None
                    return
        except StorageError as e:
            self.log(f"rsync: the previous index is unreadable ({e}); uploading the rest")
            self.cur = None
            self.failed = True

    @property
    def in_store(self) -> bool:
        """Whether the previous backup's chunk references name objects of the shared store."""
        return self.info.get("version", 0) >= STORE_FROM

    def find(self, path: str) -> dict | None:
        """The previous file entry of `path`, or None; its line as stored is then in self.line."""
        cur = self.cur
        if cur is not None and cur[0]["p"] == path:   # the usual case: the same file next in both
            self.line = cur[2]
            self._advance()
            return cur[0]
        key = order_key(path)
        while self.cur is not None and self._key() < key:
            self._advance()
        cur = self.cur
        if cur is not None and cur[0]["p"] == path:
            self.line = cur[2]
            self._advance()
            return cur[0]
        return None

    def _key(self):
        if self.cur[1] is None:
            self.cur = (self.cur[0], order_key(self.cur[0]["p"]), self.cur[2])
        return self.cur[1]

    def close(self) -> None:
        if self.tmp:
            self.tmp.close()
