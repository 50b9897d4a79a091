"""Checksum lists: what a complete backup consists of, written last, read first.

One JSON value per line, so it is written and read as a stream whatever the number of objects:
  line 1: {"version": 3, "format", "encrypted", "objects": count, "size": total stored bytes,
           "files", "created", "index": [suffix, size, sha256] (rsync),
           "store": "objects", "referencedBytes" (rsync version 4: objects in the shared store),
           "kdf": {"salt", "n", "r", "p", "check"} (encrypted only)}
  then one [suffix, size, sha256] per stored object (rsync: in index order, the index last;
  version 4: the reference list, then the index; the index vouches for the objects),
  then {"end": true, "mac": hex} ("mac" for encrypted backups only).
Suffixes are relative to the backup's remote path, so a backup can be moved as a whole.

An encrypted backup's list is authenticated: "mac" is an HMAC-SHA256, with a key derived from the
backup key (Keyring.list_mac_key), of every byte before the last line. Whoever can write to the
storage without the key cannot turn it into an unencrypted one, swap objects or rewrite sizes
and hashes: the restore checks the MAC before it uses a single line. Version 2 lists (before
the MAC) are still read when unencrypted; an encrypted version 2 list is refused, since nothing
would tell it from a forged one.
"""
import concurrent.futures
import hashlib
import hmac
import json
import tempfile
import time
from collections.abc import Iterator

from backup_storage import Storage, StorageError
from backups.formats import jsonl
from backups.formats.encryption import Keyring, WrongKey
from backups.formats.streams import blocks, bounded, lines, local_copy

CHECKSUMS = ".checksums.json"
LIST_VERSION = 3
READABLE_VERSIONS = (2, 3)


class BackupRefused(StorageError):
    """The stored backup contradicts what Berth knows about it (encrypted or not), failed
    authentication, or holds entries a restore must not create: nothing was written."""


class ChecksumWriter:
    """Collects object checksums in a local temp file; commit() stores the list, last."""

    def __init__(self, fmt: str, keyring: Keyring | None) -> None:
        self.fmt, self.keyring = fmt, keyring
        self.encrypted = keyring is not None
        self.tmp = tempfile.TemporaryFile()
        self.count = self.size = 0

    def add(self, suffix: str, size: int, sha256: str) -> None:
        self.tmp.write(jsonl.dumps([suffix, size, sha256]) + b"\n")
        self.count += 1
        self.size += size

    def commit(self, storage: Storage, remote: str, files: int, index: list | None = None,
               extra: dict | None = None) -> str:
        storage.sync()   # every object is durable before the list that vouches for them exists
        header = {"version": LIST_VERSION, "format": self.fmt, "encrypted": self.encrypted,
                  "objects": self.count, "size": self.size, "files": files, "created": int(time.time())}
        if index:
            header["index"] = index
        header.update(extra or {})
        mac = None
        if self.keyring is not None:
            header["kdf"] = self.keyring.kdf_fields()
            mac = hmac.new(self.keyring.list_mac_key(header["kdf"], remote), digestmod="sha256")
        path = remote + CHECKSUMS
        self.tmp.seek(0)
        with storage.writer(path) as out:
            for block in [json.dumps(header).encode() + b"\n", *blocks(self.tmp)]:
                out.write(block)
                if mac is not None:
                    mac.update(block)
            end = {"end": True, **({"mac": mac.hexdigest()} if mac is not None else {})}
            out.write(json.dumps(end).encode() + b"\n")
        return path

    def close(self) -> None:
        self.tmp.close()


def _parse_line(line, path):
    try:
        return jsonl.loads(line)
    except ValueError as e:
        raise StorageError(f"{path}: unreadable checksum list ({e})") from e


def _parse_header(line, path):
    header = _parse_line(line, path)
    if not isinstance(header, dict) or header.get("version") not in READABLE_VERSIONS:
        raise StorageError(f"{path}: not a Berth checksum list")
    return header


def read_checksums(storage: Storage, remote: str) -> dict | None:
    """The summary (first line) of a complete backup's checksum list: {format, encrypted, objects,
    size, files, created, ...}; None if the backup is absent or incomplete (no list). Not
    authenticated: for listing and planning only; restores use ChecksumList."""
    path = remote.strip("/") + CHECKSUMS
    if not storage.exists(path):
        return None
    with storage.reader(path) as r:
        for line in lines(r):
            return _parse_header(line, path)
    raise StorageError(f"{path}: empty checksum list")


class ChecksumList:
    """A backup's checksum list, copied to a local temp file and checked before use: format,
    whether it is encrypted (against what Berth expects), and its MAC (with the key)."""

    def __init__(self, storage: Storage, remote: str, fmt: str) -> None:
        self.remote, self.path = remote, remote + CHECKSUMS
        if not storage.exists(self.path):
            raise StorageError(f"backup {remote} is incomplete or missing: it has no checksum list")
        self.file = local_copy(storage, self.path)
        try:
            first = next(lines(self.file), None)
            if first is None:
                raise StorageError(f"{self.path}: empty checksum list")
            self.header = _parse_header(first, self.path)
            if self.header.get("format") != fmt:
                raise StorageError(f"backup {remote} is a {self.header.get('format')} backup, not {fmt}")
        except BaseException:
            self.file.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()

    @property
    def encrypted(self) -> bool:
        return bool(self.header.get("encrypted"))

    def check_expected(self, expect_encrypted: bool | None) -> None:
        """BackupRefused when the list says the backup is (not) encrypted and Berth recorded
        otherwise: a swapped backup is refused before any of it is read."""
        if expect_encrypted is None or self.encrypted == bool(expect_encrypted):
            return
        said, expected = ("" if self.encrypted else "not "), ("" if expect_encrypted else "not ")
        raise BackupRefused(f"backup {self.remote} is {said}encrypted in the storage, but it was "
                            f"{expected}encrypted when it was made: refusing it (it was replaced?)")

    def open(self, key: str | None, expect_encrypted: bool | None = None) -> Keyring | None:
        """The keyring that opens this backup (None if it is not encrypted), once the list is
        checked: expected encryption, key present and right (WrongKey), MAC (BackupRefused)."""
        self.check_expected(expect_encrypted)
        if not self.encrypted:
            return None
        if not key:
            raise WrongKey(f"backup {self.remote} is encrypted: an encryption key is needed to restore it")
        keyring = Keyring(key)
        self.authenticate(keyring)
        return keyring

    def authenticate(self, keyring: Keyring) -> None:
        kdf = self.header.get("kdf")
        if self.header.get("version", 0) < 3 or not isinstance(kdf, dict):
            raise BackupRefused(f"{self.path}: the checksum list of this encrypted backup is not "
                                "authenticated (made before Berth signed them, or forged): refusing it")
        mac = hmac.new(keyring.list_mac_key(kdf, f"backup {self.remote}"), digestmod="sha256")
        self.file.seek(0)
        rest = lines(self.file)
        for line in rest:
            if line.startswith(b'{"end"'):
                end = _parse_line(line, self.path)
                if (isinstance(end, dict) and isinstance(end.get("mac"), str)
                        and hmac.compare_digest(end["mac"], mac.hexdigest())
                        and not any(extra.strip() for extra in rest)):
                    return
                break
            mac.update(line + b"\n")
        raise BackupRefused(f"{self.path}: the checksum list failed authentication "
                            "(it was modified, or it is truncated): refusing the backup")

    def entries(self) -> Iterator[tuple[str, int, str]]:
        """Yields (suffix, size, sha256) of every object in the list; checks the list is whole."""
        self.file.seek(0)
        rest = lines(self.file)
        next(rest, None)
        for line in rest:
            item = _parse_line(line, self.path)
            if isinstance(item, dict) and item.get("end"):
                return
            if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str)
                    and isinstance(item[1], int) and isinstance(item[2], str)):
                raise StorageError(f"{self.path}: unreadable checksum list (bad entry)")
            yield tuple(item)
        raise StorageError(f"{self.path}: the checksum list is truncated")

    def find(self, suffix: str) -> tuple[int, str]:
        """(size, sha256) the list holds for one object (tgz: its only one)."""
        for listed, size, sha in self.entries():
            if listed == suffix:
                return size, sha
        raise StorageError(f"{self.path} does not list {self.remote}{suffix}")


def check_stored(storage: Storage, items: Iterator[tuple[str, str, int, str]], full: bool, reused: frozenset,
                 concurrency: int, listed_in: str) -> tuple[int, int]:
    """The verify stage's check of stored objects, each item (key, path, size, sha256): read
    back against its size and sha256 in `concurrency` threads, or only found with its size
    (full=False, or its key in `reused`: bytes the previous backup's verify already read).
    `listed_in` names the list the figures come from, for the error. Returns (objects, bytes);
    StorageError on the first mismatch or missing object."""
    def present(path, size_expected):
        size = storage.size(path)
        if size != size_expected:
            raise StorageError(f"{path}: size {size} differs from the {listed_in} ({size_expected})")
        return size

    def check(item):
        _, path, size_expected, sha_expected = item
        if not full:
            return present(path, size_expected)
        sha, size = hashlib.sha256(), 0
        with storage.reader(path) as r:
            for chunk in blocks(r):
                sha.update(chunk)
                size += len(chunk)
        if size != size_expected or sha.hexdigest() != sha_expected:
            raise StorageError(f"{path}: checksum mismatch (the stored object was modified or corrupted)")
        return size

    total = count = 0

    def to_read():
        nonlocal total, count
        for item in items:
            if item[0] in reused:   # a stat (or HEAD) here costs less than a thread task
                total += present(item[1], item[2])
                count += 1
            else:
                yield item

    with concurrent.futures.ThreadPoolExecutor(max(1, concurrency)) as pool:
        for size in bounded(pool, check, to_read(), 4 * max(1, concurrency)):
            total += size
            count += 1
    return count, total
