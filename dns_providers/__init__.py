"""DNS providers: one interface (dns_providers.base.DnsProvider), one module per kind of provider,
and a registry from the seed-era provider names to them (dns_providers.registry).

    base.py              the interface and DnsError
    registry.py          provider names, their config fields (Cloudron's names), create()
    passive.py           noop, manual, wildcard: Berth writes nothing (reads through the resolver)
    rfc2136.py           TSIG-signed dynamic updates to BIND, PowerDNS, Knot
    lexicon_provider.py  every vendor API through dns-lexicon
"""
from dns_providers.base import DnsError, DnsProvider
from dns_providers.passive import resolve
from dns_providers.registry import PROVIDERS, clean_config, create, masked, writes

__all__ = ["PROVIDERS", "DnsError", "DnsProvider", "clean_config", "create", "masked", "resolve", "writes"]
