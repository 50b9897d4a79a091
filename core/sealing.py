"""Secrets Berth must read back later (a TOTP secret, an LDAP bind password, a network share's
password), sealed before they are stored: AES-256-GCM with a key kept in a 0600 file under the
data dir (core.data_paths.at_rest_key), never in the database. A copy of the database (a leaked
file, a box backup download) opens none of them. The key is not in box backups: after a restore
onto another host sealed values cannot be opened (`unseal` gives None) and must be entered again.

`context` is associated data binding a sealed value to its place (e.g. the user id of a TOTP
secret), so a value copied to another row or field does not open.
"""
import base64
import os
import threading

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core import data_paths

SEALED_PREFIX = "v1:"

_keys: dict[str, bytes] = {}
_keys_lock = threading.Lock()


def _key() -> bytes:
    """The sealing key, created on first use. Several server processes may start together: the
    key is written to a temporary file and linked into place, so exactly one key wins and nobody
    reads a half-written file."""
    path = data_paths.at_rest_key()
    with _keys_lock:
        if path in _keys:
            return _keys[path]
        if not os.path.exists(path):
            folder = os.path.dirname(path)
            os.makedirs(folder, mode=0o700, exist_ok=True)
            tmp = os.path.join(folder, f".tmp-{os.getpid()}-{threading.get_ident()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(AESGCM.generate_key(bit_length=256))
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass                          # another process made it first: use theirs
            finally:
                os.unlink(tmp)
        with open(path, "rb") as f:
            key = f.read()
        _keys[path] = key
        return key


def seal(secret: str, context: str) -> str:
    """`secret` sealed for `context` (see the module's docstring)."""
    nonce = os.urandom(12)
    sealed = AESGCM(_key()).encrypt(nonce, secret.encode(), context.encode())
    return SEALED_PREFIX + base64.b64encode(nonce + sealed).decode()


def unseal(value: str | None, context: str) -> str | None:
    """The secret, or None when there is none or it cannot be opened (another host's key, or a
    value moved from another row or context)."""
    if not value or not value.startswith(SEALED_PREFIX):
        return None
    raw = base64.b64decode(value[len(SEALED_PREFIX):])
    try:
        return AESGCM(_key()).decrypt(raw[:12], raw[12:], context.encode()).decode()
    except (InvalidTag, ValueError):
        return None
