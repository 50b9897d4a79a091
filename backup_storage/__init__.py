"""Where backups are kept: a folder (filesystem provider), an S3-compatible bucket, or nowhere (noop).

Every provider offers the same small object API (`Storage`): atomic writers, streaming readers,
listing, server-side copy and removal, with '/'-separated paths relative to the configured root
(backupFolder) or bucket prefix. Formats (backup_formats.py) are written against this API only.

Every failure surfaces as StorageError carrying the storage's own message (the OS error text such
as "No space left on device", or the S3 server's error message and code), so what the user sees is
what the storage said, not a paraphrase.
"""
import contextlib
import ctypes
import errno
import ipaddress
import os
import re
import secrets
import shutil
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

from core import errors

PROVIDERS = ("filesystem", "s3", "minio", "s3-v4-compat", "digitalocean-spaces", "exoscale-sos",
             "wasabi", "scaleway-objectstorage", "noop")
S3_PROVIDERS = PROVIDERS[1:-1]
FORMATS = ("tgz", "rsync")
MIN_INTERVAL_SECS = 6 * 3600
DEFAULT_RETENTION_SECS = 7 * 24 * 3600
DEFAULT_INTERVAL_SECS = 24 * 3600
DEFAULT_CONCURRENCY = 4
MAX_CONCURRENCY = 100
# What GET answers for a stored secret; posting it back means "keep the stored one".
MASK = "\u25cf" * 8
SECRET_FIELDS = ("key", "secretAccessKey")

# In-progress objects of the filesystem provider carry this name until they are complete, so a
# crash never leaves a half-written object under its final name; list() never shows them.
TMP_PREFIX = ".berth-tmp-"
PROBE_PREFIX = ".berth-probe-"

# Providers whose endpoint follows from the region (the seed's defaults for each service).
_ENDPOINTS = {
    "digitalocean-spaces": ("https://{region}.digitaloceanspaces.com", "nyc3"),
    "exoscale-sos": ("https://sos-{region}.exo.io", "ch-gva-2"),
    "wasabi": ("https://s3.{region}.wasabisys.com", "us-east-1"),
    "scaleway-objectstorage": ("https://s3.{region}.scw.cloud", "fr-par"),
}


class StorageError(errors.DependencyFailed):
    """The backup storage failed; the message is the storage's own."""


# ---- configuration -----------------------------------------------------------------------------

def _type_check(cfg, field, kind, label):
    value = cfg.get(field)
    if value is None:
        return None
    if kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise errors.BadRequest(f"must be {label}", field)
    return value


_CRON_FIELD = re.compile(r"^[0-9A-Za-z*?/,\-]+$")


def validate_config(cfg):
    """Normalised copy of a BackupConfig; BadRequest naming the field for anything unusable.

    Pure validation: nothing is contacted (probe() does that). Fields that do not apply to the
    provider are dropped; unset optional fields get their defaults."""
    if not isinstance(cfg, dict):
        raise errors.BadRequest("backup config must be an object")
    provider = _type_check(cfg, "provider", str, "a string")
    if not provider:
        raise errors.BadRequest("is required", "provider")
    if provider not in PROVIDERS:
        raise errors.BadRequest(f"{provider!r} is not supported (one of {', '.join(PROVIDERS)})", "provider")
    fmt = _type_check(cfg, "format", str, "a string")
    if not fmt:
        raise errors.BadRequest("is required", "format")
    if fmt not in FORMATS:
        raise errors.BadRequest(f"{fmt!r} is not supported (tgz or rsync)", "format")
    out = {"provider": provider, "format": fmt}

    retention = _type_check(cfg, "retentionSecs", int, "a whole number of seconds")
    if retention is None:
        raise errors.BadRequest("is required", "retentionSecs")
    out["retentionSecs"] = retention

    interval = _type_check(cfg, "intervalSecs", int, "a whole number of seconds")
    pattern = _type_check(cfg, "schedulePattern", str, "a string")
    if interval is not None and interval < MIN_INTERVAL_SECS:
        raise errors.BadRequest(f"must be at least {MIN_INTERVAL_SECS} (6 hours)", "intervalSecs")
    if pattern is not None:
        fields = pattern.split()
        if len(fields) != 6 or not all(_CRON_FIELD.match(f) for f in fields):
            raise errors.BadRequest("must be a cron pattern with seconds (6 fields, e.g. '00 00 23 * * *')",
                                    "schedulePattern")
        out["schedulePattern"] = " ".join(fields)
    if interval is not None or pattern is None:
        out["intervalSecs"] = DEFAULT_INTERVAL_SECS if interval is None else interval

    concurrency = _type_check(cfg, "syncConcurrency", int, "a whole number")
    if concurrency is not None and not 1 <= concurrency <= MAX_CONCURRENCY:
        raise errors.BadRequest(f"must be between 1 and {MAX_CONCURRENCY}", "syncConcurrency")
    out["syncConcurrency"] = concurrency or DEFAULT_CONCURRENCY

    key = _type_check(cfg, "key", str, "a string")
    out["key"] = key or None

    if provider == "filesystem":
        folder = _type_check(cfg, "backupFolder", str, "a string")
        if not folder:
            raise errors.BadRequest("is required for the filesystem provider", "backupFolder")
        if not os.path.isabs(folder) or "\0" in folder:
            raise errors.BadRequest("must be an absolute path", "backupFolder")
        folder = os.path.normpath(folder)
        if folder == "/":
            raise errors.BadRequest("must not be the root folder", "backupFolder")
        out["backupFolder"] = folder
        out["noHardlinks"] = bool(_type_check(cfg, "noHardlinks", bool, "true or false"))
        out["externalDisk"] = bool(_type_check(cfg, "externalDisk", bool, "true or false"))
    elif provider in S3_PROVIDERS:
        for field in ("bucket", "accessKeyId", "secretAccessKey"):
            value = _type_check(cfg, field, str, "a string")
            if not value or not value.strip():
                raise errors.BadRequest(f"is required for the {provider} provider", field)
            out[field] = value.strip() if field != "secretAccessKey" else value
        if "/" in out["bucket"] or len(out["bucket"]) > 255:
            raise errors.BadRequest("must be a bucket name (no '/')", "bucket")
        prefix = _type_check(cfg, "prefix", str, "a string") or ""
        prefix = "/".join(p for p in prefix.split("/") if p)
        if any(p in (".", "..") for p in prefix.split("/")):
            raise errors.BadRequest("must not contain '.' or '..' segments", "prefix")
        out["prefix"] = prefix
        region = (_type_check(cfg, "region", str, "a string") or "").strip()
        default_endpoint = _ENDPOINTS.get(provider)
        if not region:
            region = default_endpoint[1] if default_endpoint else "us-east-1"
        out["region"] = region
        endpoint = (_type_check(cfg, "endpoint", str, "a string") or "").strip()
        if not endpoint:
            if provider in ("minio", "s3-v4-compat"):
                raise errors.BadRequest(f"is required for the {provider} provider", "endpoint")
            if default_endpoint:
                endpoint = default_endpoint[0].format(region=region)
        if endpoint:
            if "://" not in endpoint:
                endpoint = "https://" + endpoint
            parsed = urlparse(endpoint)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise errors.BadRequest("must be an http:// or https:// URL", "endpoint")
            endpoint = endpoint.rstrip("/")
        out["endpoint"] = endpoint or None
        out["acceptSelfSignedCerts"] = bool(_type_check(cfg, "acceptSelfSignedCerts", bool, "true or false"))
        signature = _type_check(cfg, "signatureVersion", str, "a string")
        if signature is not None:
            if signature not in ("v2", "v4"):
                raise errors.BadRequest("must be v2 or v4", "signatureVersion")
            out["signatureVersion"] = signature
    return out


def default_config(data_dir):
    """A fresh instance's backup config: filesystem under the data dir, tgz, daily, 7 days kept."""
    return validate_config({"provider": "filesystem", "format": "tgz",
                            "backupFolder": os.path.join(os.path.abspath(data_dir), "backups"),
                            "retentionSecs": DEFAULT_RETENTION_SECS, "intervalSecs": DEFAULT_INTERVAL_SECS})


def masked(cfg):
    """Copy of `cfg` with each set secret replaced by MASK (for GET responses)."""
    out = dict(cfg)
    for field in SECRET_FIELDS:
        if out.get(field):
            out[field] = MASK
    return out


def unmask(new, old):
    """Copy of `new` where a secret sent back as MASK takes the stored value from `old`."""
    out = dict(new)
    for field in SECRET_FIELDS:
        if out.get(field) == MASK:
            out[field] = (old or {}).get(field)
    return out


def open_storage(cfg):
    """The Storage for a (validated) backup config."""
    provider = cfg.get("provider")
    concurrency = cfg.get("syncConcurrency") or DEFAULT_CONCURRENCY
    if provider == "filesystem":
        return FilesystemStorage(cfg["backupFolder"], no_hardlinks=bool(cfg.get("noHardlinks")),
                                 external_disk=bool(cfg.get("externalDisk")))
    if provider in S3_PROVIDERS:
        cfg = validate_config({"format": "tgz", "retentionSecs": 0, **cfg})
        return S3Storage(provider=provider, bucket=cfg["bucket"], prefix=cfg["prefix"],
                         endpoint=cfg["endpoint"], region=cfg["region"],
                         access_key_id=cfg["accessKeyId"], secret_access_key=cfg["secretAccessKey"],
                         accept_self_signed=cfg["acceptSelfSignedCerts"],
                         signature_version=cfg.get("signatureVersion"), concurrency=concurrency)
    if provider == "noop":
        return NoopStorage()
    raise errors.BadRequest(f"{provider!r} is not supported", "provider")


# ---- paths -------------------------------------------------------------------------------------

def _clean(path, allow_empty=False):
    """'/'-joined relative path; refuses anything that could leave the storage root."""
    if not isinstance(path, str) or "\0" in path:
        raise ValueError(f"bad storage path {path!r}")
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts) or (not parts and not allow_empty):
        raise ValueError(f"bad storage path {path!r}")
    return "/".join(parts)


class Storage:
    """Object API shared by every provider (see module docstring)."""
    provider = None
    cheap_copy = False     # copy() is a local metadata operation (hard link), not worth a thread

    def probe(self):
        raise NotImplementedError

    def writer(self, path, durable=True):
        raise NotImplementedError

    def reader(self, path):
        raise NotImplementedError

    def exists(self, path):
        raise NotImplementedError

    def size(self, path):
        raise NotImplementedError

    def list(self, prefix=""):
        raise NotImplementedError

    def remove(self, path):
        raise NotImplementedError

    def remove_prefix(self, prefix):
        raise NotImplementedError

    def copy(self, src, dst):
        raise NotImplementedError

    def local_path(self, path):
        return None

    def sync(self):
        """Make every completed write durable (writers opened with durable=False)."""

    def put_bytes(self, path, data):
        with self.writer(path) as out:
            out.write(data)

    def get_bytes(self, path):
        chunks = []
        with self.reader(path) as src:
            while True:
                chunk = src.read(1 << 20)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)

    def describe(self):
        return self.provider


class _Guarded:
    """File-like whose OSErrors become StorageError with the OS's message."""

    def __init__(self, f, what):
        self._f, self._what = f, what

    def write(self, data):
        try:
            return self._f.write(data)
        except OSError as e:
            raise StorageError(f"{self._what}: {e.strerror or e}") from e

    def read(self, n=-1):
        try:
            return self._f.read(n)
        except OSError as e:
            raise StorageError(f"{self._what}: {e.strerror or e}") from e


def _oserror(action, path, e):
    return StorageError(f"Cannot {action} {path}: {e.strerror or e}")


# ---- filesystem --------------------------------------------------------------------------------

class FilesystemStorage(Storage):
    provider = "filesystem"

    def __init__(self, root, no_hardlinks=False, external_disk=False):
        self.root = os.path.abspath(root)
        self.no_hardlinks = no_hardlinks
        self.external_disk = external_disk
        self.cheap_copy = not no_hardlinks
        self._made = set()    # folders known to exist: saves a mkdir per object in rsync backups
        self._disk_checked = False

    def describe(self):
        return f"filesystem {self.root}"

    def _full(self, path, allow_empty=False):
        rel = _clean(path, allow_empty)
        return os.path.join(self.root, rel) if rel else self.root

    def _makedirs(self, folder):
        if folder in self._made:
            return
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as e:
            raise _oserror("create", folder, e) from e
        self._made.add(folder)

    def _check_disk(self):
        if not self.external_disk or self._disk_checked:
            return
        # An unmounted external disk leaves an empty folder on the root filesystem: refuse it rather
        # than fill the system disk with backups.
        probe = self.root
        while not os.path.exists(probe):
            probe = os.path.dirname(probe)
        if os.stat(probe).st_dev == os.stat("/").st_dev:
            raise StorageError(f"{self.root} is not on a mounted external disk "
                               "(it is on the root filesystem)")
        self._disk_checked = True

    def probe(self):
        self._check_disk()
        name = f"{PROBE_PREFIX}{secrets.token_hex(8)}"
        data = secrets.token_bytes(64)
        try:
            os.makedirs(self.root, exist_ok=True)
        except OSError as e:
            raise _oserror("create", self.root, e) from e
        self.put_bytes(name, data)
        try:
            back = self.get_bytes(name)
        finally:
            self.remove(name)
        if back != data:
            raise StorageError(f"{self.root}: the probe object read back differs from what was written")

    @contextlib.contextmanager
    def writer(self, path, durable=True):
        full = self._full(path)
        folder = os.path.dirname(full)
        self._check_disk()
        self._makedirs(folder)
        # The temporary name is short and fixed-length so it never exceeds NAME_MAX even when
        # the object's own name is 255 bytes long.
        tmp = os.path.join(folder, TMP_PREFIX + secrets.token_hex(8))
        opener = lambda p, fl: os.open(p, fl, 0o600)  # noqa: E731 (backups hold secrets)
        try:
            try:
                f = open(tmp, "xb", opener=opener)
            except FileNotFoundError:
                # The folder was removed behind our back (another storage object pruned it).
                self._made.discard(folder)
                self._makedirs(folder)
                f = open(tmp, "xb", opener=opener)
        except OSError as e:
            raise _oserror("write", full, e) from e
        done = False
        try:
            yield _Guarded(f, f"Cannot write {full}")
            try:
                f.flush()
                if durable:
                    os.fsync(f.fileno())
                f.close()
                os.rename(tmp, full)
                done = True
                if durable:
                    _fsync_dir(folder)
            except OSError as e:
                raise _oserror("write", full, e) from e
        finally:
            if not done:
                with contextlib.suppress(OSError):
                    f.close()
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    @contextlib.contextmanager
    def reader(self, path):
        full = self._full(path)
        try:
            f = open(full, "rb")
        except OSError as e:
            raise _oserror("read", full, e) from e
        with f:
            yield _Guarded(f, f"Cannot read {full}")

    def exists(self, path):
        return os.path.isfile(self._full(path))

    def size(self, path):
        full = self._full(path)
        try:
            return os.stat(full).st_size
        except OSError as e:
            raise _oserror("read", full, e) from e

    def list(self, prefix=""):
        base = self._full(prefix, allow_empty=True)
        rel = _clean(prefix, allow_empty=True)
        out = []
        if not os.path.isdir(base):
            return out
        stack = [(base, rel)]
        try:
            while stack:
                folder, relfolder = stack.pop()
                with os.scandir(folder) as it:
                    for entry in it:
                        name = entry.name
                        if name.startswith(TMP_PREFIX):
                            continue
                        path = f"{relfolder}/{name}" if relfolder else name
                        if entry.is_dir(follow_symlinks=False):
                            stack.append((entry.path, path))
                        elif entry.is_file(follow_symlinks=False):
                            out.append(path)
        except OSError as e:
            raise _oserror("list", base, e) from e
        out.sort()
        return out

    def _prune_parents(self, full):
        # Leave no empty folders behind removed objects (up to, not including, the root).
        self._made.clear()
        folder = os.path.dirname(full)
        while folder.startswith(self.root + os.sep):
            try:
                os.rmdir(folder)
            except OSError:
                return
            folder = os.path.dirname(folder)

    def remove(self, path):
        full = self._full(path)
        try:
            os.unlink(full)
        except FileNotFoundError:
            return
        except OSError as e:
            raise _oserror("remove", full, e) from e
        self._prune_parents(full)

    def remove_prefix(self, prefix):
        full = self._full(prefix)   # an empty prefix (the whole root) is refused by _clean
        if os.path.isdir(full) and not os.path.islink(full):
            def fail(func, p, exc):
                e = exc if isinstance(exc, BaseException) else exc[1]
                if not isinstance(e, FileNotFoundError):
                    raise _oserror("remove", p, e) from e
            shutil.rmtree(full, onerror=fail)
        elif os.path.lexists(full):
            self.remove(prefix)
            return
        self._prune_parents(full)

    def copy(self, src, dst):
        s, d = self._full(src), self._full(dst)
        folder = os.path.dirname(d)
        self._makedirs(folder)
        if not self.no_hardlinks:
            try:
                # A link appears complete at once: no temporary name needed.
                os.link(s, d)
                return
            except FileExistsError:
                tmp = os.path.join(folder, TMP_PREFIX + secrets.token_hex(8))
                try:
                    os.link(s, tmp)
                    os.rename(tmp, d)
                    return
                except OSError as e:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
                    raise _oserror("link", d, e) from e
            except FileNotFoundError as e:
                if not os.path.isdir(folder):   # removed behind our back: forget the cache
                    self._made.discard(folder)
                    self._makedirs(folder)
                    return self.copy(src, dst)
                raise _oserror("link", s, e) from e
            except OSError as e:
                # Filesystems without hard links (or at the link limit) fall back to a real copy.
                if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP):
                    raise _oserror("link", d, e) from e
        with self.reader(src) as fin, self.writer(dst, durable=False) as fout:
            while True:
                chunk = fin.read(1 << 20)
                if not chunk:
                    break
                fout.write(chunk)

    def local_path(self, path):
        return self._full(path)

    def sync(self):
        # One syncfs for the backup's filesystem instead of an fsync per object: rsync backups
        # write thousands of small objects.
        try:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as e:
            raise _oserror("sync", self.root, e) from e
        try:
            if _libc_syncfs is not None:
                if _libc_syncfs(fd) != 0:
                    err = ctypes.get_errno()
                    raise StorageError(f"Cannot sync {self.root}: {os.strerror(err)}")
            else:
                os.sync()
        finally:
            os.close(fd)


def _fsync_dir(folder):
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _libc_syncfs = _libc.syncfs
    _libc_syncfs.argtypes = [ctypes.c_int]
except (OSError, AttributeError):
    _libc_syncfs = None


# ---- S3 family ---------------------------------------------------------------------------------

class _S3Writer:
    """Buffers into parts; a small object is one PutObject, a large one a multipart upload whose
    parts go up in the background (at most two in flight, so memory stays bounded)."""

    PART = 8 << 20

    def __init__(self, storage, key):
        self.s, self.key = storage, key
        self.buf = bytearray()
        self.upload_id = None
        self.parts = []
        self.pending = deque()
        self.pool = None

    def _part_size(self):
        # S3 allows 10,000 parts: grow the part size so objects of hundreds of GB still fit.
        return self.PART * (1 + len(self.parts) // 1000)

    def write(self, data):
        self.buf += data
        while len(self.buf) >= self._part_size():
            size = self._part_size()
            self._send(bytes(self.buf[:size]))
            del self.buf[:size]

    def _send(self, body):
        s = self.s
        if self.upload_id is None:
            r = s._call("CreateMultipartUpload", self.key, s.client.create_multipart_upload,
                        Bucket=s.bucket, Key=self.key)
            self.upload_id = r["UploadId"]
            self.pool = ThreadPoolExecutor(2, thread_name_prefix="s3-part")
        number = len(self.parts) + 1
        self.parts.append(None)
        self.pending.append((number, self.pool.submit(
            s._call, "UploadPart", self.key, s.client.upload_part, Bucket=s.bucket, Key=self.key,
            UploadId=self.upload_id, PartNumber=number, Body=body)))
        while len(self.pending) > 2:
            self._collect()

    def _collect(self):
        number, fut = self.pending.popleft()
        self.parts[number - 1] = {"PartNumber": number, "ETag": fut.result()["ETag"]}

    def finish(self):
        s = self.s
        if self.upload_id is None:
            s._call("PutObject", self.key, s.client.put_object, Bucket=s.bucket, Key=self.key,
                    Body=bytes(self.buf))
            return
        if self.buf or not self.parts:
            self._send(bytes(self.buf))
            self.buf = bytearray()
        while self.pending:
            self._collect()
        s._call("CompleteMultipartUpload", self.key, s.client.complete_multipart_upload, Bucket=s.bucket,
                Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": self.parts})
        self.pool.shutdown()

    def abort(self):
        for _, fut in self.pending:
            fut.cancel()
        if self.pool:
            self.pool.shutdown(wait=True)
        if self.upload_id is not None:
            with contextlib.suppress(Exception):
                self.s.client.abort_multipart_upload(Bucket=self.s.bucket, Key=self.key,
                                                     UploadId=self.upload_id)


class _S3Reader:
    def __init__(self, storage, key, body):
        self.s, self.key, self.body = storage, key, body

    def read(self, n=-1):
        try:
            return self.body.read(None if n is None or n < 0 else n)
        except Exception as e:  # urllib3/botocore read errors: connection reset, timeouts
            raise StorageError(f"S3 GetObject {self.s.bucket}/{self.key}: {e}") from e


class S3Storage(Storage):
    def __init__(self, provider, bucket, prefix, endpoint, region, access_key_id, secret_access_key,
                 accept_self_signed=False, signature_version=None, concurrency=DEFAULT_CONCURRENCY):
        self.provider = provider
        self.bucket = bucket
        self.base = f"{prefix}/" if prefix else ""
        self.endpoint, self.region = endpoint, region
        self._credentials = (access_key_id, secret_access_key)
        self.accept_self_signed = accept_self_signed
        self.signature_version = signature_version
        self.concurrency = concurrency
        self._client = None
        self._lock = threading.Lock()

    def describe(self):
        return f"{self.provider} {self.endpoint or 'aws'}/{self.bucket}/{self.base}"

    @property
    def client(self):
        # boto3 is imported on first use: it costs ~40 MB and a second to import, which the
        # filesystem provider never needs.
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config
                path_style = self.provider in ("minio", "s3-v4-compat") or _is_ip_or_local(self.endpoint)
                config = Config(
                    region_name=self.region,
                    signature_version="s3" if self.signature_version == "v2" else "s3v4",
                    s3={"addressing_style": "path" if path_style else "auto"},
                    retries={"max_attempts": 3, "mode": "standard"},
                    connect_timeout=10, read_timeout=120,
                    max_pool_connections=max(10, 2 * self.concurrency + 4),
                    # Only send/verify checksums where the operation requires them: several
                    # S3-compatible servers reject the newer default CRC trailers.
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required")
                if self.accept_self_signed:
                    import urllib3
                    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
                self._client = boto3.session.Session().client(
                    "s3", endpoint_url=self.endpoint or None, aws_access_key_id=self._credentials[0],
                    aws_secret_access_key=self._credentials[1], config=config,
                    verify=not self.accept_self_signed)
            return self._client

    def _key(self, path, allow_empty=False):
        return self.base + _clean(path, allow_empty)

    def _call(self, op, key, fn, **kwargs):
        try:
            return fn(**kwargs)
        except Exception as e:
            raise self._error(op, key, e) from e

    def _error(self, op, key, e):
        from botocore.exceptions import ClientError
        where = f"{self.bucket}/{key}" if key else self.bucket
        if isinstance(e, ClientError):
            err = e.response.get("Error", {})
            code = err.get("Code") or e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            message = err.get("Message") or str(e)
            return StorageError(f"S3 {op} {where}: {message} ({code})")
        return StorageError(f"S3 {op} {where}: {e}")

    def probe(self):
        key = self._key(f"{PROBE_PREFIX}{secrets.token_hex(8)}")
        data = secrets.token_bytes(64)
        self._call("PutObject", key, self.client.put_object, Bucket=self.bucket, Key=key, Body=data)
        try:
            r = self._call("GetObject", key, self.client.get_object, Bucket=self.bucket, Key=key)
            back = _S3Reader(self, key, r["Body"]).read()
        finally:
            self._call("DeleteObject", key, self.client.delete_object, Bucket=self.bucket, Key=key)
        if back != data:
            raise StorageError(f"S3 {self.bucket}/{key}: "
                               "the probe object read back differs from what was written")

    @contextlib.contextmanager
    def writer(self, path, durable=True):
        w = _S3Writer(self, self._key(path))
        try:
            yield w
            w.finish()
        except BaseException:
            w.abort()
            raise

    @contextlib.contextmanager
    def reader(self, path):
        key = self._key(path)
        r = self._call("GetObject", key, self.client.get_object, Bucket=self.bucket, Key=key)
        body = r["Body"]
        try:
            yield _S3Reader(self, key, body)
        finally:
            body.close()

    def _head(self, key):
        from botocore.exceptions import ClientError
        try:
            return self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as e:
            if e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return None
            raise self._error("HeadObject", key, e) from e
        except Exception as e:
            raise self._error("HeadObject", key, e) from e

    def exists(self, path):
        return self._head(self._key(path)) is not None

    def size(self, path):
        key = self._key(path)
        head = self._head(key)
        if head is None:
            raise StorageError(f"S3 HeadObject {self.bucket}/{key}: Not Found (404)")
        return head["ContentLength"]

    def list(self, prefix=""):
        rel = _clean(prefix, allow_empty=True)
        start = self.base + (rel + "/" if rel else "")
        out = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=start)
            for page in pages:
                for obj in page.get("Contents", ()):
                    name = obj["Key"][len(self.base):]
                    if not name.split("/")[-1].startswith(PROBE_PREFIX):
                        out.append(name)
        except Exception as e:
            raise self._error("ListObjectsV2", start, e) from e
        out.sort()
        return out

    def remove(self, path):
        key = self._key(path)
        self._call("DeleteObject", key, self.client.delete_object, Bucket=self.bucket, Key=key)

    def remove_prefix(self, prefix):
        start = self.base + _clean(prefix) + "/"
        try:
            # Page by page (1,000 keys each), so a backup of a million files is never listed whole.
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=start)
            for page in pages:
                batch = [{"Key": obj["Key"]} for obj in page.get("Contents", ())]
                if not batch:
                    continue
                r = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
                if r.get("Errors"):
                    err = r["Errors"][0]
                    raise StorageError(f"S3 DeleteObjects {self.bucket}/{err.get('Key')}: "
                                       f"{err.get('Message')} ({err.get('Code')})")
        except StorageError:
            raise
        except Exception as e:
            raise self._error("DeleteObjects", start, e) from e

    def copy(self, src, dst):
        from botocore.exceptions import ClientError
        s, d = self._key(src), self._key(dst)
        source = {"Bucket": self.bucket, "Key": s}
        try:
            self.client.copy_object(Bucket=self.bucket, Key=d, CopySource=source)
        except ClientError as e:
            # CopyObject stops at 5 GB; the managed copy does a server-side multipart copy.
            if e.response.get("Error", {}).get("Code") not in ("InvalidRequest", "EntityTooLarge"):
                raise self._error("CopyObject", d, e) from e
            self._call("CopyObject", d, self.client.copy, CopySource=source, Bucket=self.bucket, Key=d)
        except Exception as e:
            raise self._error("CopyObject", d, e) from e


def _is_ip_or_local(endpoint):
    host = urlparse(endpoint or "").hostname or ""
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


# ---- noop --------------------------------------------------------------------------------------

class _Sink:
    def write(self, data):
        return len(data)


class NoopStorage(Storage):
    """Keeps nothing: every write is discarded (the provider for instances backed up elsewhere)."""
    provider = "noop"

    def probe(self):
        return None

    @contextlib.contextmanager
    def writer(self, path, durable=True):
        _clean(path)
        yield _Sink()

    @contextlib.contextmanager
    def reader(self, path):
        raise StorageError("noop storage keeps nothing")
        yield  # pragma: no cover

    def exists(self, path):
        return False

    def size(self, path):
        raise StorageError("noop storage keeps nothing")

    def list(self, prefix=""):
        return []

    def remove(self, path):
        return None

    def remove_prefix(self, prefix):
        return None

    def copy(self, src, dst):
        return None

    def get_bytes(self, path):
        raise StorageError("noop storage keeps nothing")
