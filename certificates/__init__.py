"""TLS certificates for the reverse proxy: the self-signed fallback certificates Berth makes, the
checks an uploaded certificate must pass, and the files nginx reads them from (<data dir>/certs/).

The database is the source of truth (see models.Domain); the files are a copy for nginx, written
atomically so a reload never sees half a certificate.
"""
import datetime
import os
import re
import tempfile

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from core import config
from core.errors import BadRequest

# Long enough that nobody has to think about renewal of a certificate browsers warn about anyway;
# files_for_domain regenerates it when it gets close to the end.
SELF_SIGNED_DAYS = 3650
RENEW_BEFORE_DAYS = 30
MAX_PEM_CHARS = 64 * 1024
_SAFE_NAME = re.compile(r"^[a-z0-9*][a-z0-9.*_-]{0,252}$")


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


# ---- making ------------------------------------------------------------------------------------

def generate_self_signed(domain, days=SELF_SIGNED_DAYS):
    """A self-signed certificate for `domain` and `*.domain` (its apps). Returns (cert_pem, key_pem)."""
    # P-256 keys are made in microseconds (RSA-2048 takes ~100 ms) and every client supports them.
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain[:64]),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Berth self-signed")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))  # tolerate clients whose clock is behind
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain), x509.DNSName("*." + domain)]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return cert_pem, key_pem


# ---- reading and checking ----------------------------------------------------------------------

def _pem(text):
    return text.strip() + "\n"


def load_chain(cert_pem, field="cert"):
    """The certificates of a PEM chain, leaf first, or BadRequest naming `field`."""
    if not isinstance(cert_pem, str) or not cert_pem.strip():
        raise BadRequest("is required", field)
    if len(cert_pem) > MAX_PEM_CHARS:
        raise BadRequest(f"is longer than {MAX_PEM_CHARS} characters", field)
    try:
        chain = x509.load_pem_x509_certificates(cert_pem.strip().encode())
    except ValueError:
        raise BadRequest("is not a PEM certificate (-----BEGIN CERTIFICATE-----)", field) from None
    return chain


def load_key(key_pem, field="key"):
    if not isinstance(key_pem, str) or not key_pem.strip():
        raise BadRequest("is required", field)
    if len(key_pem) > MAX_PEM_CHARS:
        raise BadRequest(f"is longer than {MAX_PEM_CHARS} characters", field)
    try:
        key = serialization.load_pem_private_key(key_pem.strip().encode(), password=None)
    except TypeError:  # cryptography's way of saying the key needs a password
        raise BadRequest("must not be protected by a passphrase (nginx could not read it)", field) from None
    except (ValueError, UnsupportedAlgorithm):
        raise BadRequest("is not a PEM private key (-----BEGIN PRIVATE KEY-----)", field) from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise BadRequest("must be an RSA or EC key", field)
    return key


def names(cert):
    """DNS names a certificate is valid for (subjectAltName, else the common name as old clients did)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        found = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        found = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return [n.lower().rstrip(".") for n in found if isinstance(n, str)]


def matches(pattern, hostname):
    """RFC 6125 matching: exact, or a `*.` wildcard standing for exactly one leftmost label."""
    pattern, hostname = pattern.lower(), hostname.lower()
    if pattern == hostname:
        return True
    if pattern.startswith("*."):
        head, _, rest = hostname.partition(".")
        return bool(head) and rest == pattern[2:]
    return False


def covers_domain(cert, domain):
    """Does `cert` serve `domain`: the domain itself, or its apps through `*.domain`."""
    wildcard = "*." + domain
    return any(n == wildcard or matches(n, domain) for n in names(cert))


def validate_pair(cert_pem, key_pem, domain, field="fallbackCertificate"):
    """Check an uploaded certificate for `domain`; returns (cert_pem, key_pem) normalised.

    Raises BadRequest naming `<field>.cert` or `<field>.key`: unreadable, key not belonging to the
    certificate, certificate not covering the domain, expired or not yet valid.
    """
    chain = load_chain(cert_pem, f"{field}.cert")
    key = load_key(key_pem, f"{field}.key")
    leaf = chain[0]
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if leaf.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise BadRequest("does not belong to the certificate (the first certificate of the chain "
                         "must be the one of this key)", f"{field}.key")
    now = _now()
    if leaf.not_valid_after_utc <= now:
        raise BadRequest(f"expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC", f"{field}.cert")
    if leaf.not_valid_before_utc > now + datetime.timedelta(minutes=5):
        raise BadRequest(f"is not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
                         f"{field}.cert")
    if not covers_domain(leaf, domain):
        listed = ", ".join(names(leaf)) or "no names"
        raise BadRequest(f"is for {listed}, not for {domain} or *.{domain}", f"{field}.cert")
    return _pem(cert_pem), _pem(key_pem)


def expires_within(cert_pem, days):
    leaf = x509.load_pem_x509_certificates(cert_pem.strip().encode())[0]
    return leaf.not_valid_after_utc <= _now() + datetime.timedelta(days=days)


# ---- files for nginx ---------------------------------------------------------------------------

def certs_dir(data_dir=None):
    return os.path.join(data_dir or config.get().data_dir, "certs")


def paths(name, data_dir=None):
    """(cert path, key path) of the files for `name` (a domain, or 'default' for nginx's catch-all)."""
    if not _SAFE_NAME.match(name):
        raise ValueError(f"unsafe certificate name {name!r}")
    base = os.path.join(certs_dir(data_dir), name.replace("*", "_wildcard_"))
    return base + ".cert", base + ".key"


def _write_atomic(path, text, mode):
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_text(path):
    """The file's text, or None when it does not exist."""
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


def write_files(name, cert_pem, key_pem, data_dir=None):
    """Write the pair for `name` unless the files already hold it; returns (cert path, key path, changed)."""
    cert_path, key_path = paths(name, data_dir)
    os.makedirs(os.path.dirname(cert_path), mode=0o700, exist_ok=True)
    changed = False
    # Key first: a reader that sees the new certificate must never find the old key beside it
    # for longer than the two renames take; nginx reads both only on reload, after both are done.
    for path, text, mode in ((key_path, _pem(key_pem), 0o600), (cert_path, _pem(cert_pem), 0o644)):
        if read_text(path) != text:
            _write_atomic(path, text, mode)
            changed = True
    return cert_path, key_path, changed


def read_files(name, data_dir=None):
    """(cert_pem, key_pem) currently on disk for `name`, or (None, None)."""
    cert_path, key_path = paths(name, data_dir)
    return read_text(cert_path), read_text(key_path)


def remove_files(name, data_dir=None):
    for path in paths(name, data_dir):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

