"""Domains: where apps live, how their DNS is handled and which certificate nginx serves for them.

    records.py               adding, changing, reading and removing domains (providers, TLS settings)
    hostnames.py             normalising and checking names; fqdn(); which domain a host is on
    fallback_certificates.py the certificate nginx serves for a domain, and its files
    in_use.py                why a domain cannot be removed (apps on it, ...)

Callers use `import domains; domains.X`: the names below are the package's public face.
"""
from domains.fallback_certificates import certificate_files
from domains.hostnames import check_label, domain_for_host, fqdn, normalise
from domains.in_use import reason as in_use_reason
from domains.records import (
    PROVIDERS,
    TLS_PROVIDERS,
    add_domain,
    find,
    get_domain,
    list_domains,
    masked_config,
    needs_overwrite,
    remove_domain,
    update_domain,
)

__all__ = [
    "PROVIDERS", "TLS_PROVIDERS", "add_domain", "certificate_files", "check_label", "domain_for_host", "find",
    "fqdn", "get_domain", "in_use_reason", "list_domains", "masked_config", "needs_overwrite",
    "normalise", "remove_domain", "update_domain",
]
