"""Backup encryption (when a key/password is set).

scrypt(password, 16-byte salt; N=2^15, r=8) -> 64 bytes (encryption key and MAC key); each object
gets its own AES-256-GCM key (HMAC of the encryption key and a random 16-byte seed) and is sealed
in 1 MiB chunks (nonce = chunk counter + last-chunk flag, so chunks cannot be reordered, dropped
or truncated unnoticed), with the object header as associated data. The header carries a
key-check value, so a wrong key is reported (WrongKey) before anything is restored.

The MAC key also names rsync objects (an HMAC of the path, so file names are hidden) and
authenticates the checksum list (`list_mac_key`), so whoever can write to the storage but does
not have the key can neither read a backup nor rewrite what its list says about it.
"""
import hmac
import os
import struct
import threading
from collections.abc import Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from backup_storage import StorageError
from backup_storage.base import Writable

CHUNK = 1 << 20               # plaintext bytes per AES-GCM chunk
MAGIC = b"BERTHENC"
VERSION = 1
SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P = 15, 8, 1
HEADER = struct.Struct(">8sBBBB16s16s16s")   # magic, version, log2 N, r, p, salt, key check, seed
TAG = 16


class WrongKey(StorageError):
    """The encryption key does not open this backup."""


def _kdf_params_ok(log_n, r, p):
    # Berth writes 15/8/1. The parameters come from the storage, before anything is authenticated:
    # bounded, so a crafted header cannot make scrypt take gigabytes of memory (128 * r * 2^log_n).
    return 10 <= log_n <= 20 and 1 <= r <= 16 and 1 <= p <= 4


class Keyring:
    """Keys derived from one password; scrypt runs once per salt (objects copied from earlier
    backups carry their own backup's salt)."""

    def __init__(self, password: str | bytes) -> None:
        self.password = password.encode() if isinstance(password, str) else password
        self._keys = {}
        self._lock = threading.Lock()
        self.salt = os.urandom(16)

    def keys(self, salt: bytes, log_n: int = SCRYPT_LOG_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> tuple[bytes, bytes]:
        """(encryption key, MAC key) for `salt`."""
        with self._lock:
            k = self._keys.get((salt, log_n, r, p))
            if k is None:
                raw = Scrypt(salt=salt, length=64, n=1 << log_n, r=r, p=p).derive(self.password)
                k = (raw[:32], raw[32:])
                self._keys[(salt, log_n, r, p)] = k
            return k

    def check_value(self, salt: bytes, log_n: int = SCRYPT_LOG_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> bytes:
        return hmac.new(self.keys(salt, log_n, r, p)[1], b"berth-backup key check", "sha256").digest()[:16]

    def name_key(self) -> bytes:
        return hmac.new(self.keys(self.salt)[1], b"berth-backup names", "sha256").digest()

    def header(self) -> bytes:
        return HEADER.pack(MAGIC, VERSION, SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P, self.salt,
                           self.check_value(self.salt), os.urandom(16))

    def open_header(self, header: bytes, what: str) -> AESGCM:
        """AESGCM for an object's header; WrongKey if the key check fails."""
        if len(header) < HEADER.size:
            raise StorageError(f"{what}: truncated (no encryption header)")
        magic, version, log_n, r, p, salt, check, seed = HEADER.unpack(header[:HEADER.size])
        if magic != MAGIC or version != VERSION or not _kdf_params_ok(log_n, r, p):
            raise StorageError(f"{what}: not an encrypted Berth backup object")
        if not hmac.compare_digest(self.check_value(salt, log_n, r, p), check):
            raise WrongKey(f"wrong encryption key: it does not open {what}")
        return _object_cipher(self.keys(salt, log_n, r, p)[0], seed)

    # ---- the checksum list's MAC ----

    def kdf_fields(self) -> dict:
        """What a checksum list records so that, at restore, the key is checked and the list's
        MAC key derived from the password alone."""
        return {"salt": self.salt.hex(), "n": SCRYPT_LOG_N, "r": SCRYPT_R, "p": SCRYPT_P,
                "check": self.check_value(self.salt).hex()}

    def list_mac_key(self, fields: dict, what: str) -> bytes:
        """The MAC key of a checksum list written with `fields` (kdf_fields()); WrongKey if the
        password is not the one the list was written with."""
        try:
            salt, check = bytes.fromhex(fields["salt"]), bytes.fromhex(fields["check"])
            log_n, r, p = int(fields["n"]), int(fields["r"]), int(fields["p"])
        except (KeyError, TypeError, ValueError):
            raise StorageError(f"{what}: unreadable key parameters") from None
        if len(salt) != 16 or not _kdf_params_ok(log_n, r, p):
            raise StorageError(f"{what}: unusable key parameters")
        if len(check) != 16 or not hmac.compare_digest(self.check_value(salt, log_n, r, p), check):
            raise WrongKey(f"wrong encryption key: it does not open {what}")
        return hmac.new(self.keys(salt, log_n, r, p)[1], b"berth-backup checksum list", "sha256").digest()


def _object_cipher(enc_key, seed):
    return AESGCM(hmac.new(enc_key, b"object" + seed, "sha256").digest())


def _nonce(counter, final):
    return counter.to_bytes(11, "big") + (b"\x01" if final else b"\x00")


class Encrypter:
    """Writes header + sealed CHUNK-sized chunks to `out`; close() seals the (possibly empty) last."""

    def __init__(self, out: Writable, keyring: Keyring) -> None:
        self.out = out
        self.header = keyring.header()
        seed = self.header[-16:]
        self.aead = _object_cipher(keyring.keys(keyring.salt)[0], seed)
        self.buf = bytearray()
        self.counter = 0
        out.write(self.header)

    def write(self, data: bytes) -> None:
        self.buf += data
        # Keep at least one byte back so the last chunk, sealed with the final flag, is never empty
        # unless the whole plaintext is.
        while len(self.buf) > CHUNK:
            self._seal(bytes(self.buf[:CHUNK]), False)
            del self.buf[:CHUNK]

    def _seal(self, data, final):
        self.out.write(self.aead.encrypt(_nonce(self.counter, final), data, self.header))
        self.counter += 1

    def close(self) -> None:
        self._seal(bytes(self.buf), True)
        self.buf = bytearray()


class Decrypter:
    """Feed ciphertext in any pieces; yields plaintext. finish() checks the stream was complete."""

    def __init__(self, keyring: Keyring, what: str) -> None:
        self.keyring, self.what = keyring, what
        self.aead = None
        self.header = None
        self.buf = bytearray()
        self.counter = 0
        self.finished = False

    def start(self, header: bytes | bytearray) -> None:
        self.aead = self.keyring.open_header(header, self.what)
        self.header = bytes(header[:HEADER.size])

    def feed(self, data: bytes) -> Iterator[bytes]:
        self.buf += data
        if self.aead is None:
            if len(self.buf) < HEADER.size:
                return
            self.start(self.buf[:HEADER.size])
            del self.buf[:HEADER.size]
        size = CHUNK + TAG
        # A full chunk is only opened once more data follows it: the last one has the final flag.
        while len(self.buf) > size:
            yield self._open(bytes(self.buf[:size]), False)
            del self.buf[:size]

    def _open(self, sealed, final):
        if self.finished:
            raise StorageError(f"{self.what}: data after the last encrypted chunk (corrupted)")
        try:
            plain = self.aead.decrypt(_nonce(self.counter, final), sealed, self.header)
        except InvalidTag:
            raise StorageError(f"{self.what}: encrypted data failed authentication "
                               "(the object is corrupted or was modified)") from None
        self.counter += 1
        self.finished = final
        return plain

    def finish(self) -> bytes:
        if self.aead is None:
            raise StorageError(f"{self.what}: truncated (no encryption header)")
        if len(self.buf) < TAG:
            raise StorageError(f"{self.what}: truncated encrypted data")
        plain = self._open(bytes(self.buf), True)
        self.buf = bytearray()
        return plain
