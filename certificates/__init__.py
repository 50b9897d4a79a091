"""TLS certificates as x509 objects: the self-signed fallback certificates Berth makes
(self_signed.py), the checks an uploaded certificate must pass (validation.py), and ordering
certificates from an ACME CA (acme_client.py, RFC 8555 through the `acme` library).

Pure x509 work: this package knows neither nginx nor files. The files nginx reads are
reverse_proxy.certificate_files; which certificate a domain has is domains.fallback_certificates.
"""
from certificates.self_signed import RENEW_BEFORE_DAYS, SELF_SIGNED_DAYS, generate_self_signed
from certificates.validation import (
    MAX_PEM_CHARS,
    covers_domain,
    expires_within,
    load_chain,
    load_key,
    matches,
    names,
    validate_pair,
)

__all__ = [
    "MAX_PEM_CHARS", "RENEW_BEFORE_DAYS", "SELF_SIGNED_DAYS", "covers_domain", "expires_within",
    "generate_self_signed", "load_chain", "load_key", "matches", "names", "validate_pair",
]
