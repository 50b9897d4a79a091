"""The S3 family: AWS S3 and every S3-compatible service (MinIO, Wasabi, Spaces, ...), through
boto3. Objects are keys below the configured prefix of one bucket.

Errors say which operation on which key failed, with the S3 error code and the HTTP status
("S3 PutObject b/x: AccessDenied (HTTP 403)"), and never a text the server chose: the endpoint
can be anything the request said (endpoints.py limits where it may point), so a server's
<Message> or body must not come back to the caller. The full error is logged.
"""
import contextlib
import http
import ipaddress
import logging
import re
import secrets
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from backup_storage import config as storage_config
from backup_storage import endpoints
from backup_storage.base import (
    DEFAULT_CONCURRENCY,
    PROBE_PREFIX,
    Readable,
    Storage,
    StorageError,
    Writable,
    clean_path,
)

if TYPE_CHECKING:
    from botocore.client import BaseClient

log = logging.getLogger("berth.backup_storage")

# An S3 error code is a CamelCase word (NoSuchBucket, AccessDenied, SignatureDoesNotMatch); any
# other <Code> is not shown, so the field cannot carry free text from the server either.
_ERROR_CODE = re.compile(r"^[A-Z][A-Za-z0-9]{1,63}$")


def status_text(code: object, status: object) -> str:
    """'AccessDenied (HTTP 403)'; the standard reason phrase when the code is not one."""
    code = code if isinstance(code, str) and _ERROR_CODE.match(code) else None
    if code is None:
        try:
            code = http.HTTPStatus(int(status)).phrase
        except (TypeError, ValueError):
            code = "error"
    return f"{code} (HTTP {status})" if status else code


def describe(e: BaseException) -> str:
    """What went wrong, in words from Berth, botocore or the OS: never the server's own text."""
    from botocore import exceptions as bx
    if isinstance(e, bx.ClientError):
        return status_text(e.response.get("Error", {}).get("Code"),
                           e.response.get("ResponseMetadata", {}).get("HTTPStatusCode"))
    if isinstance(e, bx.HTTPClientError) and isinstance(e.kwargs.get("error"), endpoints.EndpointRefused):
        e = e.kwargs["error"]
    # These messages are botocore's, made of the endpoint URL and the local (OS, TLS) error.
    local = (endpoints.EndpointRefused, bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError,
             bx.SSLError, bx.ConnectionClosedError, bx.ProxyConnectionError, bx.NoCredentialsError)
    if isinstance(e, local):
        return str(e)
    if isinstance(e, bx.ResponseParserError):
        return "the server's answer is not an S3 response"
    return f"failed ({type(e).__name__})"


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
            log.info("S3 GetObject %s/%s: reading failed: %r", self.s.bucket, self.key, e)
            raise StorageError(f"S3 GetObject {self.s.bucket}/{self.key}: reading the object failed "
                               f"({type(e).__name__})") from e


def _is_ip_or_local(endpoint):
    host = urlparse(endpoint or "").hostname or ""
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


class S3Storage(Storage):
    def __init__(self, provider: str, bucket: str, prefix: str, endpoint: str | None, region: str,
                 access_key_id: str, secret_access_key: str, accept_self_signed: bool = False,
                 signature_version: str | None = None, concurrency: int = DEFAULT_CONCURRENCY) -> None:
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

    @classmethod
    def from_config(cls, cfg: dict) -> "S3Storage":
        """The storage of an S3-family config. Validated again here (also its endpoint), so a
        config stored before a rule was added is held to it too."""
        concurrency = cfg.get("syncConcurrency") or DEFAULT_CONCURRENCY
        cfg = storage_config.validate_config({"format": "tgz", "retentionSecs": 0, **cfg})
        return cls(provider=cfg["provider"], bucket=cfg["bucket"], prefix=cfg["prefix"], endpoint=cfg["endpoint"],
                   region=cfg["region"], access_key_id=cfg["accessKeyId"],
                   secret_access_key=cfg["secretAccessKey"], accept_self_signed=cfg["acceptSelfSignedCerts"],
                   signature_version=cfg.get("signatureVersion"), concurrency=concurrency)

    @property
    def client(self) -> "BaseClient":
        # boto3 is imported on first use: it costs ~40 MB and a second to import, which the
        # filesystem provider never needs.
        with self._lock:
            if self._client is None:
                self._client = self._new_client()
            return self._client

    def _new_client(self):
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
        client = boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint or None, aws_access_key_id=self._credentials[0],
            aws_secret_access_key=self._credentials[1], config=config,
            verify=not self.accept_self_signed)
        try:
            endpoints.guard_client(client)
        except RuntimeError as e:
            raise StorageError(str(e)) from e
        return client

    def _key(self, path, allow_empty=False):
        return self.base + clean_path(path, allow_empty)

    def _call(self, op, key, fn, **kwargs):
        try:
            return fn(**kwargs)
        except Exception as e:
            raise self._error(op, key, e) from e

    def _error(self, op, key, e):
        where = f"{self.bucket}/{key}" if key else self.bucket
        log.info("S3 %s %s failed: %r", op, where, e)
        return StorageError(f"S3 {op} {where}: {describe(e)}")

    def probe(self) -> None:
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
    def writer(self, path: str, durable: bool = True) -> Iterator[Writable]:
        w = _S3Writer(self, self._key(path))
        try:
            yield w
            w.finish()
        except BaseException:
            w.abort()
            raise

    @contextlib.contextmanager
    def reader(self, path: str) -> Iterator[Readable]:
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

    def exists(self, path: str) -> bool:
        return self._head(self._key(path)) is not None

    def size(self, path: str) -> int:
        key = self._key(path)
        head = self._head(key)
        if head is None:
            raise StorageError(f"S3 HeadObject {self.bucket}/{key}: {status_text('NoSuchKey', 404)}")
        return head["ContentLength"]

    def list(self, prefix: str = "") -> list[str]:
        rel = clean_path(prefix, allow_empty=True)
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

    def remove(self, path: str) -> None:
        key = self._key(path)
        self._call("DeleteObject", key, self.client.delete_object, Bucket=self.bucket, Key=key)

    def remove_prefix(self, prefix: str) -> None:
        start = self.base + clean_path(prefix) + "/"
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
                    log.info("S3 DeleteObjects %s/%s failed: %r", self.bucket, start, err)
                    raise StorageError(f"S3 DeleteObjects {self.bucket}/{start}: "
                                       f"{status_text(err.get('Code'), None)}")
        except StorageError:
            raise
        except Exception as e:
            raise self._error("DeleteObjects", start, e) from e

    def copy(self, src: str, dst: str) -> None:
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
