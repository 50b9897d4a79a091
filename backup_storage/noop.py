"""The noop provider: keeps nothing (for instances backed up by other means). Writes are
discarded, nothing is ever listed, and reading anything is a StorageError. Paths are checked as
by every provider, so code that passes here passes with a real storage too."""
import contextlib

from backup_storage.base import Storage, StorageError, clean_path

NOTHING = "noop storage keeps nothing"


class _Sink:
    def write(self, data):
        return len(data)


class NoopStorage(Storage):
    provider = "noop"

    @classmethod
    def from_config(cls, cfg: dict) -> "NoopStorage":
        return cls()

    def probe(self):
        return None

    @contextlib.contextmanager
    def writer(self, path, durable=True):
        clean_path(path)
        yield _Sink()

    @contextlib.contextmanager
    def reader(self, path):
        raise StorageError(NOTHING)
        yield  # pragma: no cover

    def exists(self, path):
        clean_path(path)
        return False

    def size(self, path):
        clean_path(path)
        raise StorageError(NOTHING)

    def list(self, prefix=""):
        clean_path(prefix, allow_empty=True)
        return []

    def remove(self, path):
        clean_path(path)

    def remove_prefix(self, prefix):
        clean_path(prefix)

    def copy(self, src, dst):
        clean_path(src)
        clean_path(dst)

    def get_bytes(self, path):
        clean_path(path)
        raise StorageError(NOTHING)
