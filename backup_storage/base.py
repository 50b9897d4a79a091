"""The object API every backup storage offers (`Storage`), its error, and storage paths.

Paths are '/'-separated and relative to the storage's root (the filesystem provider's
backupFolder, or the bucket prefix of the S3 family); `clean_path` refuses anything that could
leave that root. Formats (backups/formats) are written against this API only.
"""
import abc
from typing import ContextManager, Protocol

from core import errors

# In-progress objects of the filesystem provider carry this name until they are complete, so a
# crash never leaves a half-written object under its final name; list() never shows them.
TMP_PREFIX = ".berth-tmp-"
# probe() writes, reads back and removes an object of this name; list() never shows them.
PROBE_PREFIX = ".berth-probe-"
DEFAULT_CONCURRENCY = 4


class StorageError(errors.DependencyFailed):
    """The backup storage failed (424). The message says which operation on which object failed
    and why, in the storage's own terms (the OS error, or the S3 error code and HTTP status) but
    never with text a remote server chose."""


class Writable(Protocol):
    def write(self, data: bytes) -> int | None: ...


class Readable(Protocol):
    def read(self, n: int = -1) -> bytes: ...


def clean_path(path: str, allow_empty: bool = False) -> str:
    """'/'-joined relative path; ValueError for anything that could leave the storage root
    ('.', '..', NUL) and, unless allow_empty, for the root itself."""
    if not isinstance(path, str) or "\0" in path:
        raise ValueError(f"bad storage path {path!r}")
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts) or (not parts and not allow_empty):
        raise ValueError(f"bad storage path {path!r}")
    return "/".join(parts)


class Storage(abc.ABC):
    """Object API shared by every provider. Every failure is a StorageError; a bad path is a
    ValueError (a programming error, never user input)."""

    provider: str = ""
    # copy() is a local metadata operation (a hard link), not worth a thread of its own.
    cheap_copy = False

    @abc.abstractmethod
    def probe(self) -> None:
        """Check the storage is usable now: write an object, read it back, remove it. Creates
        nothing else (in particular not a missing backup folder) and leaves nothing behind."""

    @abc.abstractmethod
    def writer(self, path: str, durable: bool = True) -> ContextManager[Writable]:
        """Context manager yielding a file-like to write the object at `path`. The object
        appears under its name, complete, only when the block ends without an exception;
        otherwise nothing of it is left. durable=False defers flushing to disk to sync()."""

    @abc.abstractmethod
    def reader(self, path: str) -> ContextManager[Readable]:
        """Context manager yielding a file-like streaming the object at `path`
        (StorageError if it does not exist)."""

    @abc.abstractmethod
    def exists(self, path: str) -> bool:
        """Whether a complete object is stored at `path`."""

    @abc.abstractmethod
    def size(self, path: str) -> int:
        """Size in bytes of the object at `path` (StorageError if it does not exist)."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Sorted paths of every complete object below the folder `prefix` ("" = everything);
        temporary and probe objects are never listed."""

    @abc.abstractmethod
    def remove(self, path: str) -> None:
        """Remove the object at `path`; a missing object is not an error."""

    @abc.abstractmethod
    def remove_prefix(self, prefix: str) -> None:
        """Remove every object below the folder `prefix` (never the whole root)."""

    @abc.abstractmethod
    def copy(self, src: str, dst: str) -> None:
        """Copy the object at `src` to `dst` inside the storage (hard link or server-side copy
        where possible), replacing any object at `dst`."""

    def create(self, path: str, data: bytes) -> bool:
        """Store `data` at `path` unless an object is there already (which is left as it is):
        True when written. Content-addressed stores use it, so an object another backup has
        recorded (with its stored sha256) is never replaced. Like writer(durable=False), made
        durable by sync(). Providers whose writes cannot be conditional check first; backups and
        cleanup never run at once (the task engine's `backup` lock), so nothing races that check."""
        if self.exists(path):
            return False
        with self.writer(path, durable=False) as out:
            out.write(data)
        return True

    def local_path(self, path: str) -> str | None:
        """The host path of the object when the storage is a local folder, else None."""
        return None

    def sync(self) -> None:  # noqa: B027 - optional: most providers write durably already
        """Make every completed write durable (writers opened with durable=False)."""

    def put_bytes(self, path: str, data: bytes) -> None:
        """Store `data` as the object at `path` (atomically, like writer())."""
        with self.writer(path) as out:
            out.write(data)

    def get_bytes(self, path: str) -> bytes:
        """The whole object at `path` (StorageError if it does not exist)."""
        chunks = []
        with self.reader(path) as src:
            while True:
                chunk = src.read(1 << 20)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)

