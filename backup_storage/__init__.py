"""Where backups are kept: a folder (filesystem provider), an S3-compatible bucket, or nowhere (noop).

Every provider offers the same small object API (base.Storage): atomic writers, streaming
readers, listing, server-side copy and removal, with '/'-separated paths relative to the
configured root (backupFolder) or bucket prefix. Formats (backups/formats) are written against
this API only.

    base.py        the Storage interface, StorageError, storage paths
    config.py      validate_config / default_config / masking of secrets
    host_paths.py  which host folders may hold backups (no system folders, no '..')
    endpoints.py   where S3 endpoints may point (no loopback/link-local/private unless allowed)
    registry.py    provider name -> class, open_storage
    filesystem.py, s3.py, noop.py   the providers

Every failure surfaces as StorageError (424) saying what failed in the storage's own terms: the
OS error text ("No space left on device"), or the S3 error code and HTTP status. Text chosen by
a remote server is never passed on (see s3.py).
"""
from backup_storage.base import DEFAULT_CONCURRENCY, PROBE_PREFIX, TMP_PREFIX, Storage, StorageError
from backup_storage.config import (
    DEFAULT_INTERVAL_SECS,
    DEFAULT_RETENTION_SECS,
    FORMATS,
    MASK,
    MAX_CONCURRENCY,
    MIN_INTERVAL_SECS,
    PROVIDERS,
    S3_PROVIDERS,
    SECRET_FIELDS,
    default_config,
    masked,
    unmask,
    validate_config,
)
from backup_storage.filesystem import FilesystemStorage
from backup_storage.noop import NoopStorage
from backup_storage.registry import open_storage
from backup_storage.s3 import S3Storage

__all__ = [
    "DEFAULT_CONCURRENCY", "DEFAULT_INTERVAL_SECS", "DEFAULT_RETENTION_SECS", "FORMATS", "MASK", "MAX_CONCURRENCY",
    "MIN_INTERVAL_SECS", "PROBE_PREFIX", "PROVIDERS", "S3_PROVIDERS", "SECRET_FIELDS", "TMP_PREFIX",
    "FilesystemStorage", "NoopStorage", "S3Storage", "Storage", "StorageError",
    "default_config", "masked", "open_storage", "unmask", "validate_config",
]
