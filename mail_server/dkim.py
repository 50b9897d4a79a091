"""DKIM keys: one 2048-bit RSA key per mail domain, made by Berth the first time the domain needs
one (its DNS record or its first configuration), kept 0600 under <data dir>/mail/dkim/. The selector
is "cloudron", as Cloudron publishes it, so records made for a Cloudron keep working."""
import base64
import os
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from core import files
from mail_server import maps
from mail_server.layout import Layout

KEY_BITS = 2048


def key_path(layout: Layout, domain: str) -> str:
    return os.path.join(layout.dkim, maps.domain(domain) + ".key")


def private_key_pem(layout: Layout, domain: str) -> bytes:
    """The domain's private key (PEM), generated on first need."""
    path = key_path(layout, domain)
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        pass
    os.makedirs(layout.dkim, mode=0o700, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    # Two processes may race here: O_EXCL decides which key wins, and both return that one.
    _drop_stale(path + ".new")
    try:
        fd = os.open(path + ".new", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _wait_for(path)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    try:
        os.link(path + ".new", path)
    except FileExistsError:
        pass
    os.unlink(path + ".new")
    with open(path, "rb") as f:
        return f.read()


def _drop_stale(path: str) -> None:
    """A half-made key left by a process that died while writing it (a live one takes < 1 s)."""
    try:
        if time.time() - os.stat(path).st_mtime > 60:
            os.unlink(path)
    except FileNotFoundError:
        pass


def _wait_for(path: str) -> bytes:
    for _ in range(100):
        data = files.read_text(path)
        if data:
            return data.encode()
        time.sleep(0.05)
    raise OSError(f"DKIM key {path} was not written")


def _key(layout: Layout, domain: str) -> rsa.RSAPrivateKey:
    return serialization.load_pem_private_key(private_key_pem(layout, domain), password=None)


def public_key(layout: Layout, domain: str) -> str:
    """The `p=` value of the domain's DKIM TXT record: base64 of the DER public key."""
    der = _key(layout, domain).public_key().public_bytes(serialization.Encoding.DER,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def signing_key(layout: Layout, domain: str) -> str:
    """The private key as one base64 line (DER, PKCS#1), the form rspamd's key table takes."""
    der = _key(layout, domain).private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
                                             serialization.NoEncryption())
    return base64.b64encode(der).decode()
