"""The self-signed fallback certificates Berth makes for a domain and `*.domain`."""
import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Long enough that nobody has to think about renewal of a certificate browsers warn about anyway;
# domains.certificate_files (domains/fallback_certificates.py) makes a new one when it gets
# within RENEW_BEFORE_DAYS of the end.
SELF_SIGNED_DAYS = 3650
RENEW_BEFORE_DAYS = 30


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def generate_self_signed(domain: str, days: int = SELF_SIGNED_DAYS) -> tuple[str, str]:
    """A self-signed certificate for `domain` and `*.domain` (its apps). Returns (cert_pem, key_pem)."""
    # P-256 keys are made in microseconds (RSA-2048 takes ~100 ms) and every client supports them.
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain[:64]),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Berth self-signed")])
    start = now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - datetime.timedelta(hours=1))  # tolerate clients whose clock is behind
        .not_valid_after(start + datetime.timedelta(days=days))
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
