"""The noop provider: keeps nothing (for instances backed up by other means). Writes are
discarded, nothing is ever listed, and reading anything is a StorageError. Paths are checked as
by every provider, so code that passes here passes with a real storage too."""
import contextlib
from collections.abc import Iterator

from backup_storage.base import Readable, Storage, StorageError, Writable, clean_path

NOTHING = "noop storage keeps nothing"


class _Sink:
    def write(self, data):
        return len(data)


class NoopStorage(Storage):
    provider = "noop"

    @classmethod
    def from_config(cls, cfg: dict) -> "NoopStorage":
        return cls()

    def probe(self) -> None:
        return None

    @contextlib.contextmanager
    def writer(self, path: str, durable: bool = True) -> Iterator[Writable]:
        clean_path(path)
        yield _Sink()

    @contextlib.contextmanager
    def reader(self, path: str) -> Iterator[Readable]:
        raise StorageError(NOTHING)
        yield  # pragma: no cover

    def exists(self, path: str) -> bool:
        clean_path(path)
        return False

    def size(self, path: str) -> int:
        clean_path(path)
        raise StorageError(NOTHING)

    def list(self, prefix: str = "") -> list[str]:
        clean_path(prefix, allow_empty=True)
        return []

    def remove(self, path: str) -> None:
        clean_path(path)

    def remove_prefix(self, prefix: str) -> None:
        clean_path(prefix)

    def copy(self, src: str, dst: str) -> None:
        clean_path(src)
        clean_path(dst)

    def get_bytes(self, path: str) -> bytes:
        clean_path(path)
        raise StorageError(NOTHING)
