"""Stream plumbing shared by the formats: block readers, read-ahead and pipe-feeding threads,
counting writers, progress lines, multi-member gzip. Memory stays flat: every queue is bounded
and nothing holds more than a few blocks."""
import concurrent.futures
import contextlib
import fcntl
import hashlib
import io
import queue
import tempfile
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, BinaryIO, TypeVar

from backup_storage import Storage, StorageError
from backup_storage.base import Readable, Writable
from core.files import read_exact

BLOCK = 1 << 20               # tar stream block compressed as one gzip member; read size
GZIP_LEVEL = 1

Log = Callable[[str], object]  # where progress lines go: a task's log, print
_T = TypeVar("_T")
_R = TypeVar("_R")


def blocks(f: Readable, size: int = BLOCK) -> Iterator[bytes]:
    while True:
        chunk = read_exact(f, size)
        if not chunk:
            return
        yield chunk
        if len(chunk) < size:
            return


def lines(f: Readable) -> Iterator[bytes]:
    """Lines of a binary stream, without holding more than a block and a line."""
    rest = b""
    for block in blocks(f):
        rest += block
        *complete, rest = rest.split(b"\n")
        yield from complete
    if rest:
        yield rest


def prefetch(f: Readable, size: int = BLOCK, depth: int = 4, digest: Any = None) -> Iterator[bytes]:
    """Blocks of `f` read ahead in a thread, so a network read overlaps the consumer's work.
    `digest` (a hashlib object) is updated with every block in that thread, in order, before the
    block is handed over: hashing overlaps the consumer's decompression (both release the GIL),
    and once the consumer has seen the end it holds the digest of everything read."""
    q = queue.Queue(depth)
    stop = threading.Event()

    def run():
        try:
            for chunk in blocks(f, size):
                if digest is not None:
                    digest.update(chunk)
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


class Feeder:
    """Writes to a pipe from its own thread, so the producer (decrypt, gunzip) keeps working while
    the consumer process (tar -x) drains the pipe. Bounded queue: memory stays flat."""

    def __init__(self, f: IO[bytes], depth: int = 8) -> None:
        self.f = f
        self.q = queue.Queue(depth)
        self.error = None
        grow_pipe(f)
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

    def write(self, data: bytes | None) -> None:
        while True:
            if self.error is not None:
                raise self.error
            try:
                self.q.put(data, timeout=0.2)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        self.write(None) if self.error is None else None
        self.t.join()
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        if self.t.is_alive():
            self.error = self.error or BrokenPipeError("stopped")
            with contextlib.suppress(queue.Full):
                self.q.put_nowait(None)
            with contextlib.suppress(OSError):
                self.f.close()
            self.t.join(timeout=5)


def grow_pipe(f: IO[bytes], size: int = 1 << 20) -> None:
    # A 1 MiB pipe (instead of 64 KiB) means fewer context switches between us and tar.
    with contextlib.suppress(OSError, AttributeError, ValueError):
        fcntl.fcntl(f.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), size)


class Counted:
    """Write-through to a storage writer, counting bytes and hashing what is stored."""

    def __init__(self, out: Writable) -> None:
        self.out = out
        self.size = 0
        self.sha = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self.out.write(data)
        self.size += len(data)
        self.sha.update(data)


class Progress:
    def __init__(self, log: Log, what: str, every: float = 5.0) -> None:
        self.log, self.what, self.every = log, what, every
        self.start = self.last = time.monotonic()

    def __call__(self, message, force=False):
        """message: a string, or a function making it (only called when a line is due)."""
        now = time.monotonic()
        if force or now - self.last >= self.every:
            self.last = now
            self.log(f"{self.what}: {message() if callable(message) else message}")


def mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def gzip_member(block: bytes) -> bytes:
    # compressobj, not zlib.compress: only the object's methods release the GIL (CPython 3.11),
    # and the parallel speed-up depends on it.
    c = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    return c.compress(block) + c.flush()


class Gunzip:
    """Multi-member gzip decoder with bounded output per step (a zip bomb cannot blow up memory)."""

    def __init__(self) -> None:
        self.d = zlib.decompressobj(31)
        self.fed = False

    def feed(self, data: bytes) -> Iterator[bytes]:
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

    def finish(self) -> Iterator[bytes]:
        tail = self.d.flush()
        if tail:
            yield tail
        if self.fed and not self.d.eof:
            raise StorageError("the archive is truncated (incomplete gzip stream)")


class IterReader(io.RawIOBase):
    """A readable raw stream over an iterator of bytes."""

    def __init__(self, it: Iterator[bytes]) -> None:
        self.it, self.rest = it, memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:
        while not self.rest:
            chunk = next(self.it, None)
            if chunk is None:
                return 0
            self.rest = memoryview(chunk)     # slices of a memoryview copy nothing
        n = min(len(b), len(self.rest))
        b[:n] = self.rest[:n]
        self.rest = self.rest[n:]
        return n


def local_copy(storage: Storage, path: str, sha: Any = None) -> BinaryIO:
    """A local temp file holding the object (streamed: memory stays flat); a long restore then
    never depends on one storage connection staying open for its whole duration."""
    tmp = tempfile.TemporaryFile()
    try:
        with storage.reader(path) as r:
            for block in blocks(r):
                if sha is not None:
                    sha.update(block)
                tmp.write(block)
        tmp.seek(0)
    except BaseException:
        tmp.close()
        raise
    return tmp


def bounded(pool: concurrent.futures.Executor, fn: Callable[[_T], _R], items: Iterable[_T],
            limit: int) -> Iterator[_R]:
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


def stderr_text(f: BinaryIO) -> str:
    f.seek(0)
    return f.read().decode(errors="replace").strip()
