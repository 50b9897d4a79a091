"""GET /mail/{domain}/status: the DNS records a mail domain needs, what DNS really answers for them,
and whether outgoing mail has a way out; and writing those records when mail is enabled.

Expected records (Cloudron's shapes): MX `10 <mail host>.` on the domain; SPF `v=spf1 a:<mail host>
~all` on the domain (found good when an SPF record names the mail host); DKIM `v=DKIM1; t=s; p=<key>`
at `<selector>._domainkey` with the key mail_server generated for the domain; DMARC `v=DMARC1;
p=reject; pct=100` at `_dmarc` (found good when a DMARC record exists); PTR of this server's public
address naming the mail host.

"Found" is a real DNS query (dnspython) to the resolver of BERTH_MAIL_RESOLVER (the system's when
unset), never the DNS provider's API: what matters is what other mail servers see. The RBL lookup of
Cloudron is not done: `rbl` says so rather than claiming a clean listing.
dnspython is imported where the queries are made (see dns_providers.passive: idle memory).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import dns_providers
import domains
import mail_server
from core import config
from mail import settings, sync

if TYPE_CHECKING:
    import dns.resolver

DMARC = "v=DMARC1; p=reject; pct=100"
TIMEOUT_SECS = 5


def _resolver() -> dns.resolver.Resolver:
    import dns.resolver
    where = config.get().mail_resolver
    if not where:
        resolver = dns.resolver.Resolver()
    else:
        resolver = dns.resolver.Resolver(configure=False)
        host, _, port = where.rpartition(":")
        resolver.nameservers = [host.strip("[]")]
        resolver.port = int(port)
    resolver.lifetime = resolver.timeout = TIMEOUT_SECS
    return resolver


def _query(name: str, rtype: str) -> list[str]:
    """The values DNS answers for (name, type), [] when none or when DNS cannot be asked."""
    import dns.exception
    try:
        answer = _resolver().resolve(name, rtype, raise_on_no_answer=False)
    except (dns.exception.DNSException, OSError, ValueError):
        return []
    if rtype == "TXT":
        return [b"".join(r.strings).decode(errors="replace") for r in answer]
    return [r.to_text() for r in answer]


def _selector() -> str:
    return getattr(mail_server, "DKIM_SELECTOR", "cloudron")


def _dkim_key(domain: str, enabled: bool) -> str:
    """The domain's DKIM public key; only asked for enabled domains (asking generates the key, and a
    GET must not write)."""
    if not enabled:
        return ""
    try:
        return mail_server.dkim_public_key(domain)
    except mail_server.MailServerError:
        return ""


def expected_records(domain: str, enabled: bool = True) -> dict[str, tuple[str, str, str]]:
    """{kind: (name relative to the domain, type, value)} of the records mail on `domain` needs."""
    host = sync.hostname()
    key = _dkim_key(domain, enabled)
    return {
        "mx": ("", "MX", f"10 {host}."),
        "spf": ("", "TXT", f"v=spf1 a:{host} ~all"),
        "dkim": (f"{_selector()}._domainkey", "TXT", f"v=DKIM1; t=s; p={key}" if key else ""),
        "dmarc": ("_dmarc", "TXT", DMARC),
    }


def _same(a: str, b: str) -> bool:
    return a.lower().rstrip(".") == b.lower().rstrip(".")


def _check(kind: str, found: list[str], expected: str, host: str) -> tuple[str | None, bool]:
    """(the found value shown, is it good)."""
    if kind == "mx":
        return (" ".join(found) or None), any(_same(v, expected) for v in found)
    if kind == "spf":
        spf = [v for v in found if v.startswith("v=spf1")]
        return (spf[0] if spf else None), any(f"a:{host}" in v.split() for v in spf)
    if kind == "dkim":
        dkim = [v for v in found if "p=" in v]
        key = expected.partition("p=")[2]
        return (dkim[0] if dkim else None), bool(key) and any(v.replace(" ", "").endswith("p=" + key) for v in dkim)
    dmarc = [v for v in found if v.startswith("v=DMARC1")]
    return (dmarc[0] if dmarc else None), bool(dmarc)


def _record(domain: str, name: str, rtype: str, value: str | None, expected: str, good: bool) -> dict:
    return {"domain": f"{name}.{domain}" if name else domain, "name": name or "@", "type": rtype,
            "value": value, "expected": expected, "status": good}


def _ptr(host: str, ip: str | None) -> dict:
    if not ip:
        return {"domain": "", "name": "", "type": "PTR", "value": None, "expected": f"{host}.", "status": False}
    import dns.reversename
    name = dns.reversename.from_address(ip).to_text()
    found = _query(name, "PTR")
    return {"domain": name, "name": name, "type": "PTR", "value": " ".join(found) or None,
            "expected": f"{host}.", "status": any(_same(v, host) for v in found)}


def _relay(md) -> dict:
    provider = (md.relay or {}).get("provider", "cloudron-smtp")
    if provider == "noop":
        return {"status": True, "value": "Outgoing mail is switched off (relay noop)"}
    if provider == "cloudron-smtp":
        up = sync.running()
        return {"status": up, "value": "OK" if up else "The built-in mail server is not running"}
    try:
        mail_server.test_relay(md.relay)
    except mail_server.MailServerError as e:
        return {"status": False, "value": e.message}
    return {"status": True, "value": "OK"}


def status(domain: str) -> dict:
    """The MailStatus shape of the spec."""
    md = settings.get_settings(domain)
    host = sync.hostname()
    dns = {}
    for kind, (name, rtype, expected) in expected_records(md.domain_id, md.enabled).items():
        fqdn = f"{name}.{md.domain_id}" if name else md.domain_id
        value, good = _check(kind, _query(fqdn, rtype), expected, host)
        dns[kind] = _record(md.domain_id, name, rtype, value, expected, good)
    ip = domains.public_address.detect()
    dns["ptr"] = _ptr(host, ip)
    return {"dns": dns, "rbl": {"status": True, "ip": ip or "", "servers": [],
                                "note": "RBL listings are not checked by Berth"},
            "relay": _relay(md)}


def write_records(domain: str) -> str | None:
    """Write the mail records of an enabled domain through its DNS provider, and the mail host's
    A/AAAA record (both skipped for providers that write nothing). Returns the provider's error, or
    None: callers record it, the mail setting itself stands (the records can be synced again)."""
    records = [(name, rtype, [value]) for name, rtype, value in expected_records(domain).values() if value]
    try:
        # The MX names the mail host: it needs its address record first (DNS servers refuse an MX
        # pointing at a name without one), through the provider of the domain it is on.
        domains.dns_records.add(lambda line: None, [sync.hostname()])
        domains.dns_records.write_mail_records(domain, records)
    except dns_providers.DnsError as e:
        return str(e)
    return None
