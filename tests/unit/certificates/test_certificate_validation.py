"""certificates: RFC 6125 name matching, which names a certificate covers, and the checks an
uploaded pair must pass. Certificates made here with cryptography, not with the code under test."""
import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import certificates
from core.errors import BadRequest


@pytest.mark.parametrize("pattern, hostname, expected", [
    ("example.test", "example.test", True),
    ("Example.TEST", "example.test", True),
    ("*.example.test", "www.example.test", True),
    ("*.example.test", "WWW.Example.Test", True),
    ("*.example.test", "example.test", False),          # the wildcard needs a label
    ("*.example.test", "a.b.example.test", False),      # exactly one label
    ("*.example.test", ".example.test", False),
    ("www.example.test", "example.test", False),
    ("w*.example.test", "www.example.test", False),     # partial wildcards are not honoured
    ("*.test", "example.test", True),
])
def test_matches(pattern, hostname, expected):
    assert certificates.matches(pattern, hostname) is expected


def _cert(names, cn=None, days=30, starts_in_days=-1, key=None):
    key = key or ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn or (names[0] if names else "none"))])
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now + datetime.timedelta(days=starts_in_days))
               .not_valid_after(now + datetime.timedelta(days=days)))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                                        critical=False)
    cert = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return cert, cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


def test_names_prefer_the_san_and_fall_back_to_the_common_name():
    cert, _, _ = _cert(["A.example.test.", "*.example.test"], cn="ignored.test")
    assert certificates.names(cert) == ["a.example.test", "*.example.test"]
    cert, _, _ = _cert([], cn="Old.Example.test")
    assert certificates.names(cert) == ["old.example.test"]


def test_covers_domain_by_name_or_wildcard_but_not_a_sibling():
    assert certificates.covers_domain(_cert(["example.test"])[0], "example.test")
    assert certificates.covers_domain(_cert(["*.example.test"])[0], "example.test")
    assert certificates.covers_domain(_cert(["*.test"])[0], "example.test")
    assert not certificates.covers_domain(_cert(["www.example.test"])[0], "example.test")
    assert not certificates.covers_domain(_cert(["*.other.test"])[0], "example.test")


def test_validate_pair():
    _, cert, key = _cert(["*.example.test"])
    assert certificates.validate_pair(" " + cert, key + "\n\n", "example.test") == (cert, key)
    _, _, other_key = _cert(["*.example.test"])
    with pytest.raises(BadRequest, match="^fallbackCertificate.key: does not belong"):
        certificates.validate_pair(cert, other_key, "example.test")
    with pytest.raises(BadRequest, match="^fallbackCertificate.cert: is for"):
        certificates.validate_pair(cert, key, "other.test")
    _, expired, expired_key = _cert(["example.test"], days=-1, starts_in_days=-10)
    with pytest.raises(BadRequest, match="^fallbackCertificate.cert: expired on"):
        certificates.validate_pair(expired, expired_key, "example.test")
    with pytest.raises(BadRequest, match="^x.cert: is longer than"):
        certificates.validate_pair("a" * (certificates.MAX_PEM_CHARS + 1), key, "example.test", field="x")


def test_self_signed_covers_the_domain_and_its_apps_and_expiry_is_measured():
    cert_pem, key_pem = certificates.generate_self_signed("example.test")
    assert certificates.validate_pair(cert_pem, key_pem, "example.test")
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    assert sorted(certificates.names(cert)) == ["*.example.test", "example.test"]
    assert not certificates.expires_within(cert_pem, certificates.RENEW_BEFORE_DAYS)
    short, _ = certificates.generate_self_signed("example.test", days=10)
    assert certificates.expires_within(short, certificates.RENEW_BEFORE_DAYS)
