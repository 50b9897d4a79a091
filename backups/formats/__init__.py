"""How a directory tree becomes a backup on a Storage, and comes back: the tgz and rsync formats.

tgz: one archive object `<remote>.tar.gz` (`.tar.gz.enc` with a key). GNU tar (pax format, numeric
  owners, nanosecond mtimes) produces the stream; it is compressed in-process with gzip level 1 in
  1 MiB blocks on every core, each block a complete gzip member (RFC 1952 allows concatenated
  members; gzip, tar -z and Python's gzip read them as one stream), so the result is a standard
  .tar.gz while compression runs in parallel (pigz-style). Chosen over zstd (3-4x faster still) so
  that a downloaded backup opens with any tar; bench/backups.py measures it at 1.3-2x
  `tar -c | gzip -1` on two cores. Memory is flat: a bounded number of blocks is in flight.
  Restore streams the object through sha256, decryption and gunzip into `tar -x`.
rsync: one object per file under `<remote>/files/`, plus an index (`<remote>/index.jsonl.gz`: one
  JSON line per entry with mode, owner, mtime, symlink target, hard link, sha256). A file whose size,
  mtime, ctime and inode match the previous backup's index (or, failing that, whose sha256 matches)
  is not uploaded: the previous object is server-side copied (a hard link on the filesystem
  provider). With a key, objects and index are encrypted and objects are named by an HMAC of their
  path, so file names are hidden too. Scan, previous index, new index and checksum list are all
  streams in one order, so memory does not grow with the number of files.

A checksum list (`<remote>.checksums.json`, JSON lines: a summary, then size and sha256 of each
stored object) is written LAST, after everything else is durable (syncfs on the filesystem
provider); a backup without one is incomplete and is never restored.

Encryption (when a key/password is set): scrypt(password, 16-byte salt; N=2^15, r=8) -> 64 bytes
(encryption key and MAC key); each object gets its own AES-256-GCM key (HMAC of the encryption key
and a random 16-byte seed) and is sealed in 1 MiB chunks (nonce = chunk counter + last-chunk flag,
so chunks cannot be reordered, dropped or truncated unnoticed), with the object header as
associated data. The header carries a key-check value, so a wrong key is reported (WrongKey)
before anything is restored.
"""
import concurrent.futures
import contextlib
import hashlib
import hmac
import io
import itertools
import json
import os
import queue
import re
import shutil
import stat
import struct
import subprocess
import tempfile
import threading
import time
import zlib
from collections import deque

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from backup_storage import StorageError

BLOCK = 1 << 20               # tar stream block compressed as one gzip member
CHUNK = 1 << 20               # plaintext bytes per AES-GCM chunk
GZIP_LEVEL = 1
MAGIC = b"BERTHENC"
VERSION = 1
SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P = 15, 8, 1
HEADER = struct.Struct(">8sBBBB16s16s16s")   # magic, version, log2 N, r, p, salt, key check, seed
TAG = 16
CHECKSUMS = ".checksums.json"
INDEX = "index.jsonl.gz"


class WrongKey(StorageError):
    """The encryption key does not open this backup."""


def _tar():
    return shutil.which("tar") or "tar"


def _is_root():
    return os.geteuid() == 0


# ---- encryption --------------------------------------------------------------------------------

class Keyring:
    """Keys derived from one password; scrypt runs once per salt (objects copied from earlier
    backups carry their own backup's salt)."""

    def __init__(self, password):
        self.password = password.encode() if isinstance(password, str) else password
        self._keys = {}
        self._lock = threading.Lock()
        self.salt = os.urandom(16)

    def keys(self, salt, log_n=SCRYPT_LOG_N, r=SCRYPT_R, p=SCRYPT_P):
        with self._lock:
            k = self._keys.get((salt, log_n, r, p))
            if k is None:
                raw = Scrypt(salt=salt, length=64, n=1 << log_n, r=r, p=p).derive(self.password)
                k = (raw[:32], raw[32:])
                self._keys[(salt, log_n, r, p)] = k
            return k

    def check_value(self, salt, log_n=SCRYPT_LOG_N, r=SCRYPT_R, p=SCRYPT_P):
        return hmac.new(self.keys(salt, log_n, r, p)[1], b"berth-backup key check", "sha256").digest()[:16]

    def name_key(self):
        return hmac.new(self.keys(self.salt)[1], b"berth-backup names", "sha256").digest()

    def header(self):
        return HEADER.pack(MAGIC, VERSION, SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P, self.salt,
                           self.check_value(self.salt), os.urandom(16))

    def open_header(self, header, what):
        """AESGCM for an object's header; WrongKey if the key check fails."""
        if len(header) < HEADER.size:
            raise StorageError(f"{what}: truncated (no encryption header)")
        magic, version, log_n, r, p, salt, check, seed = HEADER.unpack(header[:HEADER.size])
        if magic != MAGIC or version != VERSION or log_n > 22:
            raise StorageError(f"{what}: not an encrypted Berth backup object")
        if not hmac.compare_digest(self.check_value(salt, log_n, r, p), check):
            raise WrongKey(f"wrong encryption key: it does not open {what}")
        return _object_cipher(self.keys(salt, log_n, r, p)[0], seed)


def _object_cipher(enc_key, seed):
    return AESGCM(hmac.new(enc_key, b"object" + seed, "sha256").digest())


def _nonce(counter, final):
    return counter.to_bytes(11, "big") + (b"\x01" if final else b"\x00")


class Encrypter:
    """Writes header + sealed CHUNK-sized chunks to `out`; close() seals the (possibly empty) last."""

    def __init__(self, out, keyring):
        self.out = out
        self.header = keyring.header()
        seed = self.header[-16:]
        self.aead = _object_cipher(keyring.keys(keyring.salt)[0], seed)
        self.buf = bytearray()
        self.counter = 0
        out.write(self.header)

    def write(self, data):
        self.buf += data
        # Keep at least one byte back so the last chunk, sealed with the final flag, is never empty
        # unless the whole plaintext is.
        while len(self.buf) > CHUNK:
            self._seal(bytes(self.buf[:CHUNK]), False)
            del self.buf[:CHUNK]

    def _seal(self, data, final):
        self.out.write(self.aead.encrypt(_nonce(self.counter, final), data, self.header))
        self.counter += 1

    def close(self):
        self._seal(bytes(self.buf), True)
        self.buf = bytearray()


class Decrypter:
    """Feed ciphertext in any pieces; yields plaintext. finish() checks the stream was complete."""

    def __init__(self, keyring, what):
        self.keyring, self.what = keyring, what
        self.aead = None
        self.header = None
        self.buf = bytearray()
        self.counter = 0
        self.finished = False

    def start(self, header):
        self.aead = self.keyring.open_header(header, self.what)
        self.header = bytes(header[:HEADER.size])

    def feed(self, data):
        self.buf += data
        if self.aead is None:
            if len(self.buf) < HEADER.size:
                return
            self.start(self.buf[:HEADER.size])
            del self.buf[:HEADER.size]
        size = CHUNK + TAG
        # A full chunk is only opened once more data follows it: the last one has the final flag.
        while len(self.buf) > size:
            yield self._open(bytes(self.buf[:size]), False)
            del self.buf[:size]

    def _open(self, sealed, final):
        if self.finished:
            raise StorageError(f"{self.what}: data after the last encrypted chunk (corrupted)")
        try:
            plain = self.aead.decrypt(_nonce(self.counter, final), sealed, self.header)
        except InvalidTag:
            raise StorageError(f"{self.what}: encrypted data failed authentication "
                               "(the object is corrupted or was modified)") from None
        self.counter += 1
        self.finished = final
        return plain

    def finish(self):
        if self.aead is None:
            raise StorageError(f"{self.what}: truncated (no encryption header)")
        if len(self.buf) < TAG:
            raise StorageError(f"{self.what}: truncated encrypted data")
        plain = self._open(bytes(self.buf), True)
        self.buf = bytearray()
        return plain


def _check_key(storage, path, keyring, what):
    """Read just the header of an encrypted object: WrongKey before anything else happens."""
    with storage.reader(path) as r:
        header = _read_exact(r, HEADER.size)
    keyring.open_header(header, what)


# ---- small helpers -----------------------------------------------------------------------------

def _read_exact(f, n):
    parts, left = [], n
    while left > 0:
        chunk = f.read(left)
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _blocks(f, size=BLOCK):
    while True:
        chunk = _read_exact(f, size)
        if not chunk:
            return
        yield chunk
        if len(chunk) < size:
            return


def _prefetch(f, size=BLOCK, depth=4):
    """Blocks of `f` read ahead in a thread, so a network read overlaps the consumer's work."""
    q = queue.Queue(depth)
    stop = threading.Event()

    def run():
        try:
            for chunk in _blocks(f, size):
                while not stop.is_set():
                    try:
                        q.put(chunk, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(None)
        except BaseException as e:  # handed to the consumer
            q.put(e)

    t = threading.Thread(target=run, daemon=True, name="backup-prefetch")
    t.start()
    try:
        while True:
            item = q.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        t.join()


class _Feeder:
    """Writes to a pipe from its own thread, so the producer (decrypt, gunzip) keeps working while
    the consumer process (tar -x) drains the pipe. Bounded queue: memory stays flat."""

    def __init__(self, f, depth=8):
        self.f = f
        self.q = queue.Queue(depth)
        self.error = None
        _grow_pipe(f)
        self.t = threading.Thread(target=self._run, daemon=True, name="backup-feeder")
        self.t.start()

    def _run(self):
        try:
            while True:
                item = self.q.get()
                if item is None:
                    self.f.close()
                    return
                self.f.write(item)
        except BaseException as e:
            self.error = e
            # Drain so a producer blocked on put() wakes up and sees the error.
            while True:
                try:
                    if self.q.get_nowait() is None:
                        return
                except queue.Empty:
                    return

    def write(self, data):
        while True:
            if self.error is not None:
                raise self.error
            try:
                self.q.put(data, timeout=0.2)
                return
            except queue.Full:
                continue

    def close(self):
        self.write(None) if self.error is None else None
        self.t.join()
        if self.error is not None:
            raise self.error

    def stop(self):
        if self.t.is_alive():
            self.error = self.error or BrokenPipeError("stopped")
            with contextlib.suppress(queue.Full):
                self.q.put_nowait(None)
            with contextlib.suppress(OSError):
                self.f.close()
            self.t.join(timeout=5)


def _grow_pipe(f, size=1 << 20):
    # A 1 MiB pipe (instead of 64 KiB) means fewer context switches between us and tar.
    with contextlib.suppress(OSError, AttributeError, ValueError):
        import fcntl
        fcntl.fcntl(f.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), size)


class _Counted:
    """Write-through to a storage writer, counting bytes and hashing what is stored."""

    def __init__(self, out):
        self.out = out
        self.size = 0
        self.sha = hashlib.sha256()

    def write(self, data):
        self.out.write(data)
        self.size += len(data)
        self.sha.update(data)


class _Progress:
    def __init__(self, log, what, every=5.0):
        self.log, self.what, self.every = log, what, every
        self.start = self.last = time.monotonic()

    def __call__(self, message, force=False):
        """message: a string, or a function making it (only called when a line is due)."""
        now = time.monotonic()
        if force or now - self.last >= self.every:
            self.last = now
            self.log(f"{self.what}: {message() if callable(message) else message}")


def _mb(n):
    return f"{n / 1e6:.1f} MB"


def _gzip_member(block):
    # compressobj, not zlib.compress: only the object's methods release the GIL (CPython 3.11),
    # and the parallel speed-up depends on it.
    c = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    return c.compress(block) + c.flush()


def _stderr_text(f):
    f.seek(0)
    return f.read().decode(errors="replace").strip()


def _check_source(src_dir):
    if not os.path.isdir(src_dir):
        raise StorageError(f"backup source {src_dir} is not a folder")


# ---- checksum lists ----------------------------------------------------------------------------
# One JSON value per line, so it is written and read as a stream whatever the number of objects:
#   line 1: {"version": 2, "format", "encrypted", "objects": count, "size": total stored bytes,
#            "files", "created", "index": [suffix, size, sha256] (rsync)}
#   then one [suffix, size, sha256] per stored object (rsync: in index order, the index last),
#   then {"end": true}.
# Suffixes are relative to the backup's remote path, so a backup can be moved as a whole.

class _ChecksumWriter:
    """Collects object checksums in a local temp file; commit() stores the list, last."""

    def __init__(self, fmt, encrypted):
        self.fmt, self.encrypted = fmt, encrypted
        self.tmp = tempfile.TemporaryFile()
        self.count = self.size = 0

    def add(self, suffix, size, sha256):
        self.tmp.write(json.dumps([suffix, size, sha256]).encode() + b"\n")
        self.count += 1
        self.size += size

    def commit(self, storage, remote, files, index=None):
        storage.sync()   # every object is durable before the list that vouches for them exists
        header = {"version": 2, "format": self.fmt, "encrypted": self.encrypted, "objects": self.count,
                  "size": self.size, "files": files, "created": int(time.time())}
        if index:
            header["index"] = index
        path = remote + CHECKSUMS
        self.tmp.seek(0)
        with storage.writer(path) as out:
            out.write(json.dumps(header).encode() + b"\n")
            for block in _blocks(self.tmp):
                out.write(block)
            out.write(b'{"end": true}\n')
        return path

    def close(self):
        self.tmp.close()


def _lines(f):
    """Lines of a binary stream, without holding more than a block and a line."""
    rest = b""
    for block in _blocks(f):
        rest += block
        *lines, rest = rest.split(b"\n")
        yield from lines
    if rest:
        yield rest


def _parse_line(line, path):
    try:
        return json.loads(line)
    except ValueError as e:
        raise StorageError(f"{path}: unreadable checksum list ({e})") from e


def read_checksums(storage, remote):
    """The summary (first line) of a complete backup's checksum list: {format, encrypted, objects,
    size, files, created, ...}; None if the backup is absent or incomplete (no list)."""
    path = remote.strip("/") + CHECKSUMS
    if not storage.exists(path):
        return None
    with storage.reader(path) as r:
        for line in _lines(r):
            header = _parse_line(line, path)
            if not isinstance(header, dict) or header.get("version") != 2:
                raise StorageError(f"{path}: not a Berth checksum list")
            return header
    raise StorageError(f"{path}: empty checksum list")


def _require_checksums(storage, remote, fmt):
    cl = read_checksums(storage, remote)
    if cl is None:
        raise StorageError(f"backup {remote} is incomplete or missing: it has no checksum list")
    if cl.get("format") != fmt:
        raise StorageError(f"backup {remote} is a {cl.get('format')} backup, not {fmt}")
    return cl


def _local_copy(storage, path, sha=None):
    """A local temp file holding the object (streamed: memory stays flat); a long restore then
    never depends on one storage connection staying open for its whole duration."""
    tmp = tempfile.TemporaryFile()
    try:
        with storage.reader(path) as r:
            for block in _blocks(r):
                if sha is not None:
                    sha.update(block)
                tmp.write(block)
        tmp.seek(0)
    except BaseException:
        tmp.close()
        raise
    return tmp


def _checksum_entries(storage, remote):
    """Yields (suffix, size, sha256) of every object in the list; checks the list is whole."""
    path = remote + CHECKSUMS
    with _local_copy(storage, path) as f:
        lines = _lines(f)
        next(lines, None)
        for line in lines:
            item = _parse_line(line, path)
            if isinstance(item, dict) and item.get("end"):
                return
            yield tuple(item)
    raise StorageError(f"{path}: the checksum list is truncated")


def archive_path(remote, encrypted):
    return remote + (".tar.gz.enc" if encrypted else ".tar.gz")


# ---- public API --------------------------------------------------------------------------------

def pack(fmt, src_dir, storage, remote, key=None, previous=None, log=print, concurrency=4):
    """Back up `src_dir` to `remote` on `storage` (see module docstring). Returns
    {format, remote, size (bytes stored), uploadedBytes, files (entries that are not folders),
    checksums (path of the list), encrypted, uploadedFiles, copiedFiles, ...}.

    On failure nothing of this backup stays visible (best effort removal) and StorageError is raised."""
    _check_source(src_dir)
    if fmt not in ("tgz", "rsync"):
        raise ValueError(f"unknown backup format {fmt!r}")
    remote = remote.strip("/")
    if storage.provider == "noop":
        log(f"{fmt}: noop storage keeps nothing; skipping the upload")
        return {"format": fmt, "remote": remote, "size": 0, "uploadedBytes": 0, "files": 0,
                "checksums": remote + CHECKSUMS, "encrypted": bool(key), "uploadedFiles": 0, "copiedFiles": 0}
    try:
        if fmt == "tgz":
            return _pack_tgz(src_dir, storage, remote, key, log, concurrency)
        return _pack_rsync(src_dir, storage, remote, key, previous, log, concurrency)
    except BaseException:
        with contextlib.suppress(Exception):
            remove(fmt, storage, remote)
        raise


def unpack(fmt, storage, remote, dest_dir, key=None, log=print, concurrency=4):
    """Restore backup `remote` into `dest_dir` (absent or empty): exact bytes, modes, owners (as
    root), mtimes, symlinks. Checksums are verified while reading. WrongKey is raised before
    anything is written; on any later failure dest_dir is emptied again and StorageError raised."""
    remote = remote.strip("/")
    if os.path.isdir(dest_dir) and os.listdir(dest_dir):
        raise StorageError(f"restore target {dest_dir} is not empty")
    if os.path.exists(dest_dir) and not os.path.isdir(dest_dir):
        raise StorageError(f"restore target {dest_dir} is not a folder")
    if fmt == "tgz":
        return _unpack_tgz(storage, remote, dest_dir, key, log)
    if fmt == "rsync":
        return _unpack_rsync(storage, remote, dest_dir, key, log, concurrency)
    raise ValueError(f"unknown backup format {fmt!r}")


def verify(fmt, storage, remote, key=None, full=True, concurrency=4):
    """Re-read every stored object of the backup and check size and sha256 against its checksum
    list (full=False: presence and size only). With a key, also checks the key opens it.
    Returns {"objects", "size"}; StorageError on any mismatch or missing object. Passes at once on
    noop storage."""
    remote = remote.strip("/")
    if storage.provider == "noop":
        return {"objects": 0, "size": 0}   # nothing was kept, so nothing can be wrong
    cl = _require_checksums(storage, remote, fmt)
    if key and cl.get("encrypted"):
        first = archive_path(remote, True) if fmt == "tgz" else remote + cl["index"][0]
        _check_key(storage, first, Keyring(key), f"backup {remote}")

    def check(item):
        suffix, size_expected, sha_expected = item
        path = remote + suffix
        if not full:
            size = storage.size(path)
            if size != size_expected:
                raise StorageError(f"{path}: size {size} differs from the checksum list ({size_expected})")
            return size
        sha, size = hashlib.sha256(), 0
        with storage.reader(path) as r:
            for chunk in _blocks(r):
                sha.update(chunk)
                size += len(chunk)
        if size != size_expected or sha.hexdigest() != sha_expected:
            raise StorageError(f"{path}: checksum mismatch (the stored object was modified or corrupted)")
        return size

    total = count = 0
    with concurrent.futures.ThreadPoolExecutor(max(1, concurrency)) as pool:
        for size in _bounded(pool, check, _checksum_entries(storage, remote), 4 * max(1, concurrency)):
            total += size
            count += 1
    if count != cl["objects"]:
        raise StorageError(f"{remote}{CHECKSUMS}: lists {count} objects, its summary says {cl['objects']}")
    return {"objects": count, "size": total}


def remove(fmt, storage, remote):
    """Delete every object of the backup; the checksum list goes first, so a half-deleted backup
    is never taken for a complete one."""
    remote = remote.strip("/")
    storage.remove(remote + CHECKSUMS)
    if fmt == "tgz":
        storage.remove(archive_path(remote, True))
        storage.remove(archive_path(remote, False))
    else:
        storage.remove_prefix(remote)


def download_stream(fmt, storage, remote, block=BLOCK):
    """The stored tgz archive as is (encrypted if the backup is), as an iterator of bytes."""
    remote = remote.strip("/")
    if fmt != "tgz":
        raise StorageError("only tgz backups can be downloaded as one file")
    cl = _require_checksums(storage, remote, "tgz")
    path = archive_path(remote, cl.get("encrypted"))
    with storage.reader(path) as r:
        yield from _blocks(r, block)


def _bounded(pool, fn, items, limit):
    """Results of fn over items (in order), with at most `limit` submitted at once."""
    pending = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= limit:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for fut in pending:
            fut.cancel()


# ---- tgz ---------------------------------------------------------------------------------------

def _pack_tgz(src_dir, storage, remote, key, log, concurrency):
    encrypted = bool(key)
    path = archive_path(remote, encrypted)
    progress = _Progress(log, "tgz")
    workers = max(1, os.cpu_count() or 1)
    read_bytes = 0
    # tar lists what it archived into an index file (folders end in '/'): that gives the count
    # of files without a second walk of the tree.
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile(prefix="berth-tar-index-") as listing:
        cmd = [_tar(), "--create", "--file=-", "--directory", src_dir, "--format=pax", "--numeric-owner",
               "--pax-option=delete=atime,delete=ctime", "--verbose", f"--index-file={listing.name}", "."]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
        _grow_pipe(proc.stdout)
        try:
            with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="gzip") as pool, \
                    storage.writer(path) as out:
                counted = _Counted(out)
                sink = Encrypter(counted, Keyring(key)) if encrypted else counted
                pending = deque()
                while True:
                    block = _read_exact(proc.stdout, BLOCK)
                    if not block:
                        break
                    read_bytes += len(block)
                    pending.append(pool.submit(_gzip_member, block))
                    while len(pending) > 2 * workers:
                        sink.write(pending.popleft().result())
                    progress(f"{_mb(read_bytes)} read, {_mb(counted.size)} stored")
                while pending:
                    sink.write(pending.popleft().result())
                if encrypted:
                    sink.close()
                rc = proc.wait()
                # GNU tar exits 1 when a file changed or vanished while it was read (a live
                # folder): the archive is still valid, so that is a warning, not a failure.
                if rc not in (0, 1):
                    raise StorageError(f"tar failed reading {src_dir}: {_stderr_text(err) or f'exit {rc}'}")
                if rc == 1:
                    log(f"tgz: warning: {_stderr_text(err)}")
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()
        listing.seek(0)
        files = sum(1 for line in listing if line.strip() and not line.rstrip(b"\n").endswith(b"/"))
    sums = _ChecksumWriter("tgz", encrypted)
    try:
        sums.add(path[len(remote):], counted.size, counted.sha.hexdigest())
        checksums = sums.commit(storage, remote, files=files)
    finally:
        sums.close()
    progress(f"done: {_mb(read_bytes)} archived into {_mb(counted.size)}", force=True)
    return {"format": "tgz", "remote": remote, "size": counted.size, "uploadedBytes": counted.size,
            "files": files, "checksums": checksums, "encrypted": encrypted, "uploadedFiles": 1,
            "copiedFiles": 0, "archive": path, "tarBytes": read_bytes}


class _Gunzip:
    """Multi-member gzip decoder with bounded output per step (a zip bomb cannot blow up memory)."""

    def __init__(self):
        self.d = zlib.decompressobj(31)
        self.fed = False

    def feed(self, data):
        while data:
            self.fed = True
            out = self.d.decompress(data, 4 * BLOCK)
            if out:
                yield out
            if self.d.eof:
                # One member ended; the next one starts in what is left.
                data = self.d.unused_data
                self.d = zlib.decompressobj(31)
                self.fed = False
            else:
                data = self.d.unconsumed_tail

    def finish(self):
        tail = self.d.flush()
        if tail:
            yield tail
        if self.fed and not self.d.eof:
            raise StorageError("the archive is truncated (incomplete gzip stream)")


def _prepare_dest(dest_dir):
    created = not os.path.exists(dest_dir)
    os.makedirs(dest_dir, mode=0o700, exist_ok=True)
    return created


def _clear_dest(dest_dir, created):
    if created:
        shutil.rmtree(dest_dir, ignore_errors=True)
        return
    with contextlib.suppress(OSError):
        for name in os.listdir(dest_dir):
            p = os.path.join(dest_dir, name)
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(p)


def _unpack_tgz(storage, remote, dest_dir, key, log):
    cl = _require_checksums(storage, remote, "tgz")
    encrypted = bool(cl.get("encrypted"))
    if encrypted and not key:
        raise WrongKey(f"backup {remote} is encrypted: an encryption key is needed to restore it")
    path = archive_path(remote, encrypted)
    listed = {suffix: (size, sha) for suffix, size, sha in _checksum_entries(storage, remote)}
    if path[len(remote):] not in listed:
        raise StorageError(f"{remote}{CHECKSUMS} does not list {path}")
    expect = dict(zip(("size", "sha256"), listed[path[len(remote):]]))
    progress = _Progress(log, "tgz restore")
    decrypter = Decrypter(Keyring(key), f"backup {remote}") if encrypted else None
    created = None
    written = 0
    ok = False
    with tempfile.TemporaryFile() as err, storage.reader(path) as r:
        head = b""
        if encrypted:
            # The header's key check: a wrong key stops here, before dest_dir is created.
            head = _read_exact(r, HEADER.size)
            decrypter.start(head)
        created = _prepare_dest(dest_dir)
        cmd = [_tar(), "--extract", "--file=-", "--directory", dest_dir, "--numeric-owner",
               "--preserve-permissions"]
        if _is_root():
            cmd.append("--same-owner")
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
        try:
            sha, size = hashlib.sha256(head), len(head)
            gunzip = _Gunzip()

            feeder = _Feeder(proc.stdin)

            def emit(plain):
                nonlocal written
                for out in gunzip.feed(plain):
                    feeder.write(out)
                    written += len(out)

            try:
                for raw in _prefetch(r):
                    sha.update(raw)
                    size += len(raw)
                    if decrypter:
                        for plain in decrypter.feed(raw):
                            emit(plain)
                    else:
                        emit(raw)
                    progress(f"{_mb(size)} read, {_mb(written)} extracted")
                if decrypter:
                    emit(decrypter.finish())
                for out in gunzip.finish():
                    feeder.write(out)
                feeder.close()
            except zlib.error as e:
                raise StorageError(f"backup {remote}: the archive is corrupted ({e})") from e
            except BrokenPipeError:
                proc.wait()
                raise StorageError(f"tar failed extracting into {dest_dir}: "
                                   f"{_stderr_text(err) or 'it stopped reading'}") from None
            finally:
                feeder.stop()
            rc = proc.wait()
            if size != expect["size"] or sha.hexdigest() != expect["sha256"]:
                raise StorageError(f"{path}: checksum mismatch "
                                   "(the stored archive was modified or corrupted)")
            if rc != 0:
                raise StorageError(f"tar failed extracting into {dest_dir}: "
                                   f"{_stderr_text(err) or f'exit {rc}'}")
            ok = True
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            with contextlib.suppress(OSError):
                proc.stdin.close()
            if not ok:
                _clear_dest(dest_dir, created)
    progress(f"done: {_mb(size)} read, {_mb(written)} extracted", force=True)
    return {"format": "tgz", "remote": remote, "size": size, "restoredBytes": written}


# ---- rsync -------------------------------------------------------------------------------------
# Everything streams in one order (depth first, names sorted: the order of path components), so
# the scan, the previous backup's index, the new index and the checksum list are merged like
# sorted files: memory stays flat whatever the number of files (only folders, symlinks and hard
# links are held until the end of a restore, where they are applied last).

def _order_key(path):
    return path.split("/")


def _scan(src_dir, log):
    """Every entry under src_dir ('.' first), depth first with names sorted, as a stream."""
    st = os.lstat(src_dir)
    yield {"p": ".", "t": "d", "m": stat.S_IMODE(st.st_mode), "u": st.st_uid, "g": st.st_gid,
           "mt": st.st_mtime_ns}
    seen_inodes = {}   # (dev, ino) -> first path, for files with more than one link only
    stack = [("", iter(_listdir(src_dir)))]
    while stack:
        rel, it = stack[-1]
        name = next(it, None)
        if name is None:
            stack.pop()
            continue
        path = f"{rel}/{name}" if rel else name
        full = os.path.join(src_dir, path)
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            continue
        e = {"p": path, "m": stat.S_IMODE(st.st_mode), "u": st.st_uid, "g": st.st_gid, "mt": st.st_mtime_ns}
        if stat.S_ISDIR(st.st_mode):
            e["t"] = "d"
            yield e
            stack.append((path, iter(_listdir(full))))
            continue
        if stat.S_ISREG(st.st_mode):
            if st.st_nlink > 1:
                first = seen_inodes.setdefault((st.st_dev, st.st_ino), path)
                if first != path:
                    yield {**e, "t": "h", "l": first}
                    continue
            e.update(t="f", s=st.st_size, ct=st.st_ctime_ns, i=st.st_ino)
        elif stat.S_ISLNK(st.st_mode):
            try:
                e.update(t="l", l=os.readlink(full))
            except FileNotFoundError:
                continue
        elif stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            e.update(t="n", k=stat.S_IFMT(st.st_mode), r=st.st_rdev)
        else:
            log(f"rsync: skipping {path} (a socket or other special file)")
            continue
        yield e


def _listdir(folder):
    try:
        return sorted(os.listdir(folder))
    except FileNotFoundError:   # removed while we walk: a live folder
        return []


_UNSAFE_KEY = re.compile(r"[\x00-\x1f\x7f]")


def _object_name(path, name_key):
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


class _IndexWriter:
    """The index as gzip'ed JSON lines (one entry per line), encrypted when keyed, streamed into
    a storage writer."""

    def __init__(self, out, keyring):
        self.counted = _Counted(out)
        self.sink = Encrypter(self.counted, keyring) if keyring else self.counted
        self.gz = zlib.compressobj(1, zlib.DEFLATED, 31)
        self.buf, self.buffered = [], 0
        self.add({"version": 2})

    def add(self, entry):
        line = json.dumps(entry, separators=(",", ":")).encode() + b"\n"
        self.buf.append(line)
        self.buffered += len(line)
        if self.buffered >= BLOCK:
            self._compress()

    def _compress(self):
        data = self.gz.compress(b"".join(self.buf))
        self.buf, self.buffered = [], 0
        if data:
            self.sink.write(data)

    def close(self):
        self._compress()
        self.sink.write(self.gz.flush())
        if isinstance(self.sink, Encrypter):
            self.sink.close()


def _index_entries(f, keyring, what):
    """Entries of an index read from the binary stream f (decrypted when keyed)."""
    dec = Decrypter(keyring, what) if keyring else None
    gunzip = _Gunzip()

    def plain():
        for raw in _blocks(f):
            for piece in (dec.feed(raw) if dec else (raw,)):
                yield from gunzip.feed(piece)
        if dec:
            yield from gunzip.feed(dec.finish())
        yield from gunzip.finish()

    lines = _lines(io.BufferedReader(_IterReader(plain())))
    try:
        first = json.loads(next(lines, b"{}"))
        if first.get("version") != 2:
            raise StorageError(f"{what}: not a Berth rsync index")
        for line in lines:
            if line:
                yield json.loads(line)
    except (ValueError, zlib.error) as e:
        raise StorageError(f"{what}: unreadable index ({e})") from e


class _IterReader(io.RawIOBase):
    """A readable raw stream over an iterator of bytes."""

    def __init__(self, it):
        self.it, self.rest = it, b""

    def readable(self):
        return True

    def readinto(self, b):
        while not self.rest:
            self.rest = next(self.it, None)
            if self.rest is None:
                self.rest = b""
                return 0
        n = min(len(b), len(self.rest))
        b[:n] = self.rest[:n]
        self.rest = self.rest[n:]
        return n


class _PreviousFiles:
    """The previous rsync backup's file entries, looked up in scan order (a merge, not a map)."""

    def __init__(self, storage, previous, keyring, log):
        self.entries, self.cur, self.remote = None, None, None
        self.log = log
        self.tmp = None
        if not previous:
            return
        previous = previous.strip("/")
        try:
            cl = read_checksums(storage, previous)
            if cl is None or cl.get("format") != "rsync" or "index" not in cl:
                log(f"rsync: previous backup {previous} is not a complete rsync backup; uploading everything")
                return
            if bool(cl.get("encrypted")) != bool(keyring):
                log("rsync: the encryption setting changed since the previous backup; uploading everything")
                return
            suffix, _, sha = cl["index"]
            digest = hashlib.sha256()
            self.tmp = _local_copy(storage, previous + suffix, digest)
            if digest.hexdigest() != sha:
                log(f"rsync: previous backup {previous} has a damaged index; uploading everything")
                return
            self.entries = _index_entries(self.tmp, keyring, f"backup {previous}")
            self.remote = previous
            self._advance()
        except WrongKey:
            log("rsync: the encryption key changed since the previous backup; uploading everything")
            self.entries = self.cur = None
        except StorageError as e:
            log(f"rsync: previous backup {previous} is unusable ({e}); uploading everything")
            self.entries = self.cur = None

    def _advance(self):
        try:
            while True:
                e = next(self.entries, None)
                if e is None or e["t"] == "f":
                    self.cur = (e, _order_key(e["p"])) if e else None
                    return
        except StorageError as e:
            self.log(f"rsync: the previous index is unreadable ({e}); uploading the rest")
            self.cur = None

    def find(self, path):
        key = _order_key(path)
        while self.cur is not None and self.cur[1] < key:
            self._advance()
        if self.cur is not None and self.cur[0]["p"] == path:
            return self.cur[0]
        return None

    def close(self):
        if self.tmp:
            self.tmp.close()


def _hash_file(path):
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            chunk = f.read(BLOCK)
            if not chunk:
                return sha.hexdigest()
            sha.update(chunk)


def _pack_rsync(src_dir, storage, remote, key, previous, log, concurrency):
    keyring = Keyring(key) if key else None
    name_key = keyring.name_key() if keyring else None
    progress = _Progress(log, "rsync")
    stats = {"uploaded": 0, "uploadedFiles": 0, "copied": 0, "copiedFiles": 0, "files": 0}
    lock = threading.Lock()
    concurrency = max(1, concurrency)

    def upload(e, full):
        e["o"] = _object_name(e["p"], name_key)
        sha = hashlib.sha256()
        size = 0
        try:
            f = open(full, "rb")
        except FileNotFoundError:
            return None
        with f, storage.writer(f"{remote}/{e['o']}", durable=False) as out:
            counted = _Counted(out)
            sink = Encrypter(counted, keyring) if keyring else counted
            while True:
                chunk = f.read(BLOCK)
                if not chunk:
                    break
                sha.update(chunk)
                size += len(chunk)
                sink.write(chunk)
            if keyring:
                sink.close()
        if size != e["s"]:
            log(f"rsync: warning: {e['p']} changed size while it was read")
            e["s"] = size
        e.update(h=sha.hexdigest(), os=counted.size, oh=counted.sha.hexdigest())
        with lock:
            stats["uploaded"] += counted.size
            stats["uploadedFiles"] += 1
        return e

    def reuse(e, old):
        e.update(h=old["h"], os=old["os"], oh=old["oh"], o=_object_name(e["p"], name_key))
        storage.copy(f"{prev.remote}/{old['o']}", f"{remote}/{e['o']}")
        with lock:
            stats["copied"] += old["os"]
            stats["copiedFiles"] += 1
        return e

    def check(e, old):
        full = os.path.join(src_dir, e["p"])
        if old is not None:
            # Same size but other metadata (touch, restore, chmod): compare the content.
            try:
                if _hash_file(full) == old["h"]:
                    return reuse(e, old)
            except FileNotFoundError:
                return None
        return upload(e, full)

    prev = _PreviousFiles(storage, previous, keyring, log)
    sums = _ChecksumWriter("rsync", bool(keyring))
    index_path = f"{remote}/{INDEX}" + (".enc" if keyring else "")
    vanished = set()
    pending = deque()
    try:
        with concurrent.futures.ThreadPoolExecutor(concurrency, thread_name_prefix="rsync") as pool, \
                storage.writer(index_path, durable=False) as out:
            index = _IndexWriter(out, keyring)

            def settle(e, fut):
                # Entries are written to the index and checksum list in scan order, each once
                # its object is stored.
                if fut is not None:
                    e = fut.result()
                if e["t"] == "f":
                    sums.add("/" + e["o"], e["os"], e["oh"])
                elif e["t"] == "h" and e["l"] in vanished:
                    return
                if e["t"] != "d":
                    stats["files"] += 1   # as for tgz: every entry that is not a folder
                index.add(e)

            window = max(64, 16 * concurrency)

            def resolve(e, fut):
                if fut is not None and fut.result() is None:
                    vanished.add(e["p"])
                else:
                    settle(e, fut)

            try:
                for e in _scan(src_dir, log):
                    fut = None
                    if e["t"] == "f":
                        old = prev.find(e["p"]) if prev.cur is not None else None
                        if old is not None and all(old.get(k) == e[k] for k in ("s", "mt", "ct", "i")):
                            # rsync's quick check: same size, mtime, ctime and inode -> unchanged.
                            if storage.cheap_copy:
                                # A hard link takes microseconds: a thread task costs more (measured:
                                # batches of links on the pool were no faster).
                                reuse(e, old)
                            else:
                                fut = pool.submit(reuse, e, old)
                        else:
                            same_size = old is not None and old["s"] == e["s"]
                            fut = pool.submit(check, e, old if same_size else None)
                    pending.append((e, fut))
                    while pending and (len(pending) > window or pending[0][1] is None
                                       or pending[0][1].done()):
                        resolve(*pending.popleft())
                    progress(lambda: f"{stats['files']} files, {_mb(stats['uploaded'])} uploaded, "
                                     f"{stats['copiedFiles']} unchanged")
                while pending:
                    resolve(*pending.popleft())
            finally:
                for _, fut in pending:
                    if fut is not None:
                        fut.cancel()
            index.close()
        index_sum = [index_path[len(remote):], index.counted.size, index.counted.sha.hexdigest()]
        sums.add(*index_sum)
        checksums = sums.commit(storage, remote, files=stats["files"], index=index_sum)
    finally:
        sums.close()
        prev.close()
    uploaded = stats["uploaded"] + index.counted.size
    progress(f"done: {stats['files']} files, {_mb(uploaded)} uploaded, {stats['copiedFiles']} unchanged "
             "files copied", force=True)
    return {"format": "rsync", "remote": remote, "size": sums.size, "uploadedBytes": uploaded,
            "files": stats["files"], "checksums": checksums, "encrypted": bool(keyring),
            "uploadedFiles": stats["uploadedFiles"], "copiedFiles": stats["copiedFiles"],
            "copiedBytes": stats["copied"], "indexBytes": index.counted.size}


def _safe_rel(path):
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise StorageError(f"the backup index holds an unsafe path {path!r}")
    return path


def _apply_meta(full, e, root):
    if root:
        os.chown(full, e["u"], e["g"])
    os.chmod(full, e["m"])
    os.utime(full, ns=(e["mt"], e["mt"]))


def _unpack_rsync(storage, remote, dest_dir, key, log, concurrency):
    cl = _require_checksums(storage, remote, "rsync")
    encrypted = bool(cl.get("encrypted"))
    if encrypted and not key:
        raise WrongKey(f"backup {remote} is encrypted: an encryption key is needed to restore it")
    keyring = Keyring(key) if encrypted else None
    what = f"backup {remote}"
    suffix, index_size, index_sha = cl["index"]
    digest = hashlib.sha256()
    index_file = _local_copy(storage, remote + suffix, digest)
    progress = _Progress(log, "rsync restore")
    root = _is_root()
    stats = {"bytes": 0, "files": 0}
    lock = threading.Lock()
    concurrency = max(1, concurrency)
    created = None
    ok = False

    def fetch(e, full, size_expected, sha_expected):
        path = f"{remote}/{e['o']}"
        stored, plain, size = hashlib.sha256(), hashlib.sha256(), 0
        dec = Decrypter(keyring, f"{what}: {e['p']}") if keyring else None
        with storage.reader(path) as r, open(full, "xb") as out:
            for raw in _blocks(r):
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
        _apply_meta(full, e, root)
        with lock:
            stats["bytes"] += e["s"]
            stats["files"] += 1

    try:
        with index_file:
            if index_file.seek(0, 2) != index_size or digest.hexdigest() != index_sha:
                raise StorageError(f"{remote}{suffix}: checksum mismatch "
                                   "(the stored index was modified or corrupted)")
            index_file.seek(0)
            entries = _index_entries(index_file, keyring, what)
            first = next(entries, None)   # decrypts the header: a wrong key stops here, dest untouched
            created = _prepare_dest(dest_dir)
            folders, later = [], []
            sums = _checksum_entries(storage, remote)
            pending = deque()
            with concurrent.futures.ThreadPoolExecutor(concurrency, thread_name_prefix="restore") as pool:
                try:
                    for e in itertools.chain([first] if first else [], entries):
                        if e["p"] == ".":
                            folders.append((dest_dir, e))
                            continue
                        full = os.path.join(dest_dir, _safe_rel(e["p"]))
                        if e["t"] == "d":
                            os.mkdir(full, 0o700)
                            folders.append((full, e))
                        elif e["t"] == "f":
                            listed = next(sums, None)
                            if listed is None or listed[0] != "/" + e["o"]:
                                raise StorageError(f"{what}: the checksum list does not match the index")
                            pending.append(pool.submit(fetch, e, full, listed[1], listed[2]))
                            while len(pending) > 4 * concurrency or (pending and pending[0].done()):
                                pending.popleft().result()
                            progress(f"{stats['files']} files, {_mb(stats['bytes'])}")
                        else:
                            # Links and special files come after every file is written, so no
                            # file is ever written through a symlink.
                            later.append(e)
                    while pending:
                        pending.popleft().result()
                finally:
                    for fut in pending:
                        fut.cancel()
            for e in later:
                full = os.path.join(dest_dir, e["p"])
                if e["t"] == "l":
                    os.symlink(e["l"], full)
                    if root:
                        os.lchown(full, e["u"], e["g"])
                    os.utime(full, ns=(e["mt"], e["mt"]), follow_symlinks=False)
                elif e["t"] == "h":
                    os.link(os.path.join(dest_dir, _safe_rel(e["l"])), full)
                elif e["t"] == "n":
                    os.mknod(full, e["k"] | e["m"], e["r"])
                    _apply_meta(full, e, root)
            # Folders last, deepest first: writing into a folder changes its mtime, and a
            # read-only folder would refuse its own files.
            for full, e in reversed(folders):
                _apply_meta(full, e, root)
            if list(sums) != [(suffix, index_size, index_sha)]:
                raise StorageError(f"{what}: the checksum list does not match the index")
        ok = True
    except OSError as e:
        raise StorageError(f"restoring into {dest_dir}: {e.strerror or e}"
                           + (f" ({e.filename})" if e.filename else "")) from e
    finally:
        if not ok and created is not None:
            _clear_dest(dest_dir, created)
    progress(f"done: {stats['files']} files, {_mb(stats['bytes'])}", force=True)
    return {"format": "rsync", "remote": remote, "files": stats["files"], "restoredBytes": stats["bytes"]}
