"""tgz: one archive object `<remote>.tar.gz` (`.tar.gz.enc` with a key).

GNU tar (pax format, numeric owners, nanosecond mtimes) produces the stream; it is compressed
in-process with gzip level 1 in 1 MiB blocks on every core, each block a complete gzip member
(RFC 1952 allows concatenated members; gzip, tar -z and Python's gzip read them as one stream), so
the result is a standard .tar.gz while compression runs in parallel (pigz-style). Chosen over zstd
(3-4x faster still) so that a downloaded backup opens with any tar; bench/backups.py measures it
at 1.3-2x `tar -c | gzip -1` on two cores. Memory is flat: a bounded number of blocks is in flight.
Restore streams the object through sha256, decryption and gunzip into `tar -x`; GNU tar refuses
members that escape the target. It does create device nodes and keep setuid bits as root, so an
app restore then sweeps the tree on descriptors (dirfds.sweep) and removes/clears them.
zstd.py reuses this module's tar, checksum and restore steps with another compressor (`fmt`,
`path_of`, `compress`, `extraction` below), so both formats keep the same safety rules.
"""
import concurrent.futures
import contextlib
import hashlib
import os
import shutil
import tempfile
import zlib
from collections import deque
from collections.abc import Callable

from backup_storage import Storage, StorageError
from backups.formats import dirfds
from backups.formats.checksums import ChecksumList, ChecksumWriter
from backups.formats.encryption import HEADER, Decrypter, Encrypter, Keyring
from backups.formats.streams import (
    BLOCK,
    Counted,
    Feeder,
    Gunzip,
    Log,
    Progress,
    grow_pipe,
    gzip_member,
    mb,
    prefetch,
    read_exact,
    stderr_text,
)
from core import commands


def archive_path(remote: str, encrypted: bool) -> str:
    return remote + (".tar.gz.enc" if encrypted else ".tar.gz")


def _tar():
    return shutil.which("tar") or "tar"


def pack_tgz(src_dir: str, storage: Storage, remote: str, key: str | None, log: Log, concurrency: int, *,
             fmt: str = "tgz", path_of: Callable[[str, bool], str] = archive_path,
             compress: Callable | None = None) -> dict:
    keyring = Keyring(key) if key else None
    path = path_of(remote, bool(keyring))
    progress = Progress(log, fmt)
    # tar lists what it archived into an index file (folders end in '/'): that gives the count
    # of files without a second walk of the tree.
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile(prefix="berth-tar-index-") as listing:
        cmd = [_tar(), "--create", "--file=-", "--directory", src_dir, "--format=pax", "--numeric-owner",
               "--pax-option=delete=atime,delete=ctime", "--verbose", f"--index-file={listing.name}", "."]
        proc = commands.spawn(cmd, stdout=commands.PIPE, stderr=err, stdin=commands.DEVNULL)
        grow_pipe(proc.stdout)
        try:
            with storage.writer(path) as out:
                counted = Counted(out)
                read_bytes = (compress or _compress)(proc.stdout, counted, keyring, progress)
                rc = proc.wait()
                # GNU tar exits 1 when a file changed or vanished while it was read (a live
                # folder): the archive is still valid, so that is a warning, not a failure.
                if rc not in (0, 1):
                    raise StorageError(f"tar failed reading {src_dir}: {stderr_text(err) or f'exit {rc}'}")
                if rc == 1:
                    log(f"{fmt}: warning: {stderr_text(err)}")
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()
        listing.seek(0)
        files = sum(1 for line in listing if line.strip() and not line.rstrip(b"\n").endswith(b"/"))
    sums = ChecksumWriter(fmt, keyring)
    try:
        sums.add(path[len(remote):], counted.size, counted.sha.hexdigest())
        checksums = sums.commit(storage, remote, files=files)
    finally:
        sums.close()
    progress(f"done: {mb(read_bytes)} archived into {mb(counted.size)}", force=True)
    return {"format": fmt, "remote": remote, "size": counted.size, "uploadedBytes": counted.size,
            "files": files, "checksums": checksums, "encrypted": bool(keyring), "uploadedFiles": 1,
            "copiedFiles": 0, "archive": path, "tarBytes": read_bytes}


def _compress(stream, counted, keyring, progress):
    """gzip members of the tar stream, on every core, into `counted` (encrypted when keyed)."""
    workers = max(1, os.cpu_count() or 1)
    sink = Encrypter(counted, keyring) if keyring else counted
    read_bytes = 0
    with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="gzip") as pool:
        pending = deque()
        while True:
            block = read_exact(stream, BLOCK)
            if not block:
                break
            read_bytes += len(block)
            pending.append(pool.submit(gzip_member, block))
            while len(pending) > 2 * workers:
                sink.write(pending.popleft().result())
            progress(f"{mb(read_bytes)} read, {mb(counted.size)} stored")
        while pending:
            sink.write(pending.popleft().result())
    if keyring:
        sink.close()
    return read_bytes


def unpack_tgz(storage: Storage, remote: str, dest_dir: str, key: str | None, log: Log,
               expect_encrypted: bool | None = None, privileged: bool = False, *, fmt: str = "tgz",
               path_of: Callable[[str, bool], str] = archive_path, extraction: type | None = None) -> dict:
    with ChecksumList(storage, remote, fmt) as cl:
        keyring = cl.open(key, expect_encrypted)
        path = path_of(remote, keyring is not None)
        expect = cl.find(path[len(remote):])
    progress = Progress(log, f"{fmt} restore")
    created = None
    ok = False
    with storage.reader(path) as r:
        decrypter, head = None, b""
        if keyring:
            # The header's key check: a wrong key stops here, before dest_dir is created.
            decrypter = Decrypter(keyring, f"backup {remote}")
            head = read_exact(r, HEADER.size)
            decrypter.start(head)
        created = dirfds.prepare_dest(dest_dir)
        try:
            extraction = (extraction or _Extraction)(dest_dir, remote, progress)
            size = extraction.run(r, head, decrypter, path, expect)
            if not privileged:
                try:
                    dirfds.sweep(dest_dir, log)
                except OSError as e:
                    raise StorageError(f"restoring into {dest_dir}: {e.strerror or e}") from e
            ok = True
        finally:
            if not ok:
                dirfds.clear_dest(dest_dir, created)
    progress(f"done: {mb(size)} read, {mb(extraction.written)} extracted", force=True)
    return {"format": fmt, "remote": remote, "size": size, "restoredBytes": extraction.written}


class _Extraction:
    """One `tar -x` fed from the stored object: sha256 of what is read, decryption, gunzip."""

    def __init__(self, dest_dir, remote, progress):
        self.dest_dir, self.remote, self.progress = dest_dir, remote, progress
        self.written = 0

    def run(self, r, head, decrypter, path, expect) -> int:
        """Stored bytes read. StorageError if they are not the (size, sha256) the checksum list
        expects (checked first: a modified archive often makes tar fail too), or if tar fails."""
        cmd = [_tar(), "--extract", "--file=-", "--directory", self.dest_dir, "--numeric-owner",
               "--preserve-permissions"]
        if os.geteuid() == 0:
            cmd.append("--same-owner")
        with tempfile.TemporaryFile() as err:
            proc = commands.spawn(cmd, stdin=commands.PIPE, stdout=commands.DEVNULL, stderr=err)
            try:
                sha, size = self._feed(proc, err, r, head, decrypter)
                rc = proc.wait()
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                with contextlib.suppress(OSError):
                    proc.stdin.close()
            if (size, sha.hexdigest()) != tuple(expect):
                raise StorageError(f"{path}: checksum mismatch (the stored archive was modified or corrupted)")
            if rc != 0:
                raise StorageError(f"tar failed extracting into {self.dest_dir}: {stderr_text(err) or f'exit {rc}'}")
        return size

    @contextlib.contextmanager
    def _feeding(self, proc, err, corrupted: type[Exception]):
        """A Feeder of tar's stdin for the body of the `with`; closed at its end. The
        decompressor's `corrupted` errors and tar stopping to read become StorageError."""
        feeder = Feeder(proc.stdin)
        try:
            yield feeder
            feeder.close()
        except corrupted as e:
            raise StorageError(f"backup {self.remote}: the archive is corrupted ({e})") from e
        except BrokenPipeError:
            proc.wait()
            raise StorageError(f"tar failed extracting into {self.dest_dir}: "
                               f"{stderr_text(err) or 'it stopped reading'}") from None
        finally:
            feeder.stop()

    def _feed(self, proc, err, r, head, decrypter):
        sha, size = hashlib.sha256(head), len(head)
        gunzip = Gunzip()

        with self._feeding(proc, err, zlib.error) as feeder:
            def emit(plain):
                for out in gunzip.feed(plain):
                    feeder.write(out)
                    self.written += len(out)

            for raw in prefetch(r, digest=sha):   # hashed in the reading thread
                size += len(raw)
                for plain in (decrypter.feed(raw) if decrypter else (raw,)):
                    emit(plain)
                self.progress(f"{mb(size)} read, {mb(self.written)} extracted")
            if decrypter:
                emit(decrypter.finish())
            for out in gunzip.finish():
                feeder.write(out)
        return sha, size

