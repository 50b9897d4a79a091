"""Domains: where apps live, how their DNS is handled and which certificate nginx serves for them.

    records.py               adding, changing, reading and removing domains (providers, TLS settings)
    dashboard.py             the first-run setup and the dashboard domain (`my.<domain>`)
    hostnames.py             normalising and checking names; fqdn(); which domain a host is on
    fallback_certificates.py the certificate nginx serves for a domain, and its files
    acme_orders.py           which certificate a name gets (user > ACME > fallback); ACME orders, renewal
    task_bodies.py           the renewcerts task bodies and the renewal schedule's action
    in_use.py                why a domain cannot be removed (apps on it, ...)
    dns_records.py           the A/AAAA records that follow the apps (through dns_providers)
    public_address.py        this server's public address (sysinfo_config, server_ip)
    dynamic_dns.py           re-pointing the records when that address changes
    expiry_notices.py        notifications for certificates about to end that nothing renews

Callers use `import domains; domains.X`: the names below are the package's public face.
"""
from domains import acme_orders, dashboard, dns_records, dynamic_dns, public_address
from domains.acme_orders import certificate_files  # user > ACME > fallback
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
    "PROVIDERS", "TLS_PROVIDERS", "acme_orders", "add_domain", "certificate_files", "check_label", "dashboard",
    "dns_records", "domain_for_host", "dynamic_dns", "find", "fqdn", "get_domain", "in_use_reason", "list_domains",
    "masked_config", "needs_overwrite", "normalise", "public_address", "remove_domain", "update_domain",
]
