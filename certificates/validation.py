"""Reading and checking certificates: the checks an uploaded certificate must pass, name
matching, and expiry."""
import datetime

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from certificates.self_signed import now
from core.errors import BadRequest

MAX_PEM_CHARS = 64 * 1024


def pem(text: str) -> str:
    """PEM text as it is stored and written: no surrounding blanks, one final newline."""
    return text.strip() + "\n"


def load_chain(cert_pem: str, field: str = "cert") -> list[x509.Certificate]:
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


def load_key(key_pem: str, field: str = "key") -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    """The private key (RSA or EC, without passphrase), or BadRequest naming `field`."""
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


def names(cert: x509.Certificate) -> list[str]:
    """DNS names a certificate is valid for (subjectAltName, else the common name as old clients did)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        found = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        found = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return [n.lower().rstrip(".") for n in found if isinstance(n, str)]


def matches(pattern: str, hostname: str) -> bool:
    """RFC 6125 matching: exact, or a `*.` wildcard standing for exactly one leftmost label."""
    pattern, hostname = pattern.lower(), hostname.lower()
    if pattern == hostname:
        return True
    if pattern.startswith("*."):
        head, _, rest = hostname.partition(".")
        return bool(head) and rest == pattern[2:]
    return False


def covers_domain(cert: x509.Certificate, domain: str) -> bool:
    """Does `cert` serve `domain`: the domain itself, or its apps through `*.domain`."""
    wildcard = "*." + domain
    return any(n == wildcard or matches(n, domain) for n in names(cert))


def validate_pair(cert_pem: str, key_pem: str, domain: str, field: str = "fallbackCertificate") -> tuple[str, str]:
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
    at = now()
    if leaf.not_valid_after_utc <= at:
        raise BadRequest(f"expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC", f"{field}.cert")
    if leaf.not_valid_before_utc > at + datetime.timedelta(minutes=5):
        raise BadRequest(f"is not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
                         f"{field}.cert")
    if not covers_domain(leaf, domain):
        listed = ", ".join(names(leaf)) or "no names"
        raise BadRequest(f"is for {listed}, not for {domain} or *.{domain}", f"{field}.cert")
    return pem(cert_pem), pem(key_pem)


def expires_within(cert_pem: str, days: int) -> bool:
    leaf = x509.load_pem_x509_certificates(cert_pem.strip().encode())[0]
    return leaf.not_valid_after_utc <= now() + datetime.timedelta(days=days)
