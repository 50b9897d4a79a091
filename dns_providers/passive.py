"""Providers through which Berth writes no DNS record: `noop`, `manual` and `wildcard`.

`noop`: DNS is none of Berth's business. `manual`: the admin creates each record. `wildcard`: the
admin points `*.<domain>` at this server once. For the last two Berth still *reads* DNS through
the system resolver (dns_check, what a name points at), because the admin's records are what
browsers will see.

verify() resolves the zone's name servers but refuses nothing: a domain is routinely added before
its delegation is in place (and Cloudron's dashboard adds it first, then shows the records to
create), so "does not resolve yet" is not a wrong credential. There are no credentials to check.

dnspython is imported by the functions that query, not at the top: every server worker imports
this package, and ~60 modules that only a DNS check needs should not stay in an idle worker
(issue 18, idle memory; mail.status and the registry's rfc2136 do the same).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from dns_providers.base import DnsError

if TYPE_CHECKING:
    import dns.rdata
    import dns.resolver


def _absolute(name: str, zone: str) -> str:
    return zone if name in ("", "@") else f"{name}.{zone}"


def resolve(fqdn: str, rtype: str, resolver: dns.resolver.Resolver | None = None) -> list[str]:
    """The values `fqdn` has for `rtype` as a resolver sees them ([] for no such name or type).
    Unreachable servers raise DnsError: "could not ask" is not "there is nothing"."""
    import dns.exception
    import dns.resolver
    resolver = resolver or dns.resolver.Resolver()
    resolver.lifetime = min(resolver.lifetime or 5.0, 5.0)
    try:
        answer = resolver.resolve(fqdn, rtype, raise_on_no_answer=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.DNSException as e:
        raise DnsError(f"could not resolve {fqdn} {rtype}: {e}") from None
    return sorted(rdata_text(r) for r in (answer.rrset or []))


def rdata_text(rdata: dns.rdata.Rdata) -> str:
    """Presentation form as the interface uses it: TXT strings without their quotes."""
    import dns.rdatatype
    if rdata.rdtype == dns.rdatatype.TXT:
        return "".join(s.decode() for s in rdata.strings)
    return rdata.to_text()


class PassiveProvider:
    """Reads through the system resolver (or none for noop); never writes."""

    def __init__(self, name: str, zone: str, reads: bool = True):
        self.name, self.zone, self._reads = name, zone, reads

    writes = False

    def verify(self) -> None:
        if self._reads:
            try:
                resolve(self.zone, "NS")
            except DnsError:
                pass  # see the module docstring: informative only

    def get_records(self, name: str, rtype: str) -> list[str]:
        return resolve(_absolute(name, self.zone), rtype) if self._reads else []

    def upsert_records(self, name: str, rtype: str, values: list[str], ttl: int = 300) -> None:
        return None

    def delete_records(self, name: str, rtype: str) -> None:
        return None

