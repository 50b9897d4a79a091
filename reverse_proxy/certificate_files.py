"""The certificate and key files nginx reads (<data dir>/certs/).

The database is the source of truth (see models.Domain); these files are a copy for nginx,
written atomically so a reload never sees half a certificate, keys readable by root only.
"""
import contextlib
import os
import re

import certificates
from core import data_paths, files

_SAFE_NAME = re.compile(r"^[a-z0-9*][a-z0-9.*_-]{0,252}$")
DEFAULT = "default"   # the catch-all server's certificate


def paths(name: str, data_dir: str | None = None) -> tuple[str, str]:
    """(cert path, key path) of the files for `name` (a domain, or DEFAULT for nginx's catch-all)."""
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name):
        raise ValueError(f"unsafe certificate name {name!r}")
    base = os.path.join(data_paths.certs(data_dir), name.replace("*", "_wildcard_"))
    return base + ".cert", base + ".key"




def _pem(text: str) -> str:
    return text.strip() + "\n"


def write_files(name: str, cert_pem: str, key_pem: str, data_dir: str | None = None) -> tuple[str, str, bool]:
    """Write the pair for `name` unless the files already hold it; returns (cert path, key path, changed)."""
    cert_path, key_path = paths(name, data_dir)
    os.makedirs(os.path.dirname(cert_path), mode=0o700, exist_ok=True)
    changed = False
    # Key first: a reader that sees the new certificate must never find the old key beside it
    # for longer than the two renames take; nginx reads both only on reload, after both are done.
    for path, text, mode in ((key_path, _pem(key_pem), 0o600), (cert_path, _pem(cert_pem), 0o644)):
        if files.read_text(path) != text:
            files.write_atomic(path, text, mode)
            changed = True
    return cert_path, key_path, changed


def remove_files(name: str, data_dir: str | None = None) -> None:
    for path in paths(name, data_dir):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def default_certificate(data_dir: str) -> tuple[str, str]:
    """The certificate of the catch-all server (made once, self-signed for a name that cannot
    exist): unknown names get a 404, not a TLS failure."""
    cert_path, key_path = paths(DEFAULT, data_dir)
    if not (os.path.exists(cert_path) and os.path.exists(key_path)):
        cert, key = certificates.generate_self_signed("berth.invalid")
        write_files(DEFAULT, cert, key, data_dir)
    return cert_path, key_path
