"""Provider name -> Storage class, and the one way to open the storage of a backup config."""
from backup_storage.base import Storage
from backup_storage.config import PROVIDERS, S3_PROVIDERS
from backup_storage.filesystem import FilesystemStorage
from backup_storage.noop import NoopStorage
from backup_storage.s3 import S3Storage
from core import errors

CLASSES: dict[str, type] = {"filesystem": FilesystemStorage, "noop": NoopStorage,
                            **{name: S3Storage for name in S3_PROVIDERS}}
assert set(CLASSES) == set(PROVIDERS), "every provider config.validate_config accepts has a class"


def open_storage(cfg: dict) -> Storage:
    """The Storage for a (validated) backup config."""
    cls = CLASSES.get(cfg.get("provider"))
    if cls is None:
        raise errors.BadRequest(f"{cfg.get('provider')!r} is not supported", "provider")
    return cls.from_config(cfg)
