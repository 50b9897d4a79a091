"""Domain records: adding, changing, reading and removing the domains apps live on.

DNS providers are the seed-era family of dns_providers.registry: noop, manual and wildcard (Berth
writes no record), rfc2136 and the vendor APIs (records written for the apps: domains.dns_records).
Adding or changing a domain asks the provider to verify the credentials first; a refusal is a 400
carrying the provider's own words and nothing is stored. Secrets are masked on read, and the mask
sent back keeps the stored value.
"""
import peewee

import dns_providers
import eventlog
from core.errors import BadRequest, Conflict, DependencyFailed, NotFound
from domains import dns_records, fallback_certificates, hostnames, in_use
from models import Domain, database

PROVIDERS = dns_providers.PROVIDERS
TLS_PROVIDERS = ("fallback", "letsencrypt-prod", "letsencrypt-staging")


# ---- validation -------------------------------------------------------------------------------

def _check_provider(provider):
    if provider not in PROVIDERS:
        raise BadRequest(f"must be one of {', '.join(PROVIDERS)}", "provider")


def _clean_config(provider, raw, current=None):
    """Only the provider's own fields and Berth's flags are stored (dns_providers.clean_config)."""
    return dns_providers.clean_config(provider, raw, current)


def _verify(provider, zone, cfg):
    """Ask the provider whether these credentials may manage `zone`; its refusal is a 400."""
    try:
        dns_providers.create(provider, zone, cfg).verify()
    except dns_providers.DnsError as e:
        raise BadRequest(f"DNS provider refused: {e}", "config") from None


def _clean_tls(provider, raw, current=None):
    tls = dict(current or {"provider": "fallback", "wildcard": False})
    if raw is not None:
        if not isinstance(raw, dict):
            raise BadRequest("must be an object", "tlsConfig")
        tls = {"provider": raw.get("provider") or "fallback", "wildcard": bool(raw.get("wildcard", False))}
    if tls["provider"] not in TLS_PROVIDERS:
        raise BadRequest(f"must be one of {', '.join(TLS_PROVIDERS)}", "tlsConfig.provider")
    # Let's Encrypt values are stored, not refused: Cloudron clients send `letsencrypt-prod` by
    # default, and Cloudron itself serves the fallback certificate whenever no Let's Encrypt one
    # exists, which until Berth speaks ACME is always. Stored now, such domains get real
    # certificates when ACME arrives without the admin touching them again.
    if tls["wildcard"]:
        if not tls["provider"].startswith("letsencrypt"):
            raise BadRequest("needs a Let's Encrypt provider", "tlsConfig.wildcard")
        if not dns_providers.writes(provider):
            raise BadRequest(f"needs a programmable DNS provider, not '{provider}'", "tlsConfig.wildcard")
    return tls


def _zone(domain, zone_name):
    zone = hostnames.normalise(zone_name) or domain
    if zone != domain and not domain.endswith("." + zone):
        raise BadRequest(f"must be {domain} or a parent domain of it", "zoneName")
    return zone


# ---- reading ----------------------------------------------------------------------------------

def list_domains() -> list[Domain]:
    return list(Domain.select().order_by(Domain.domain))


def find(domain: str) -> Domain | None:
    return Domain.get_or_none(Domain.domain == hostnames.normalise(domain))


def get_domain(domain: str) -> Domain:
    return Domain.get_or_raise(NotFound(f"No such domain: {domain}"), Domain.domain == hostnames.normalise(domain))


def masked_config(dom: Domain) -> dict:
    """The provider config as the API shows it: secrets as MASK."""
    return dns_providers.masked(dom.provider, dom.config or {})


def needs_overwrite(domain: str, subdomain: str = "") -> bool:
    """Would installing an app at `subdomain` overwrite a DNS record that is not this server's?
    Answered from the provider's live records (rfc2136: a signed query to its server; vendors:
    their API). With noop, manual and wildcard Berth never writes records, so never."""
    dom = get_domain(domain)
    label = hostnames.check_label(subdomain, "subdomain")
    try:
        return bool(dns_records.conflicts([hostnames.fqdn(label, dom)]))
    except dns_providers.DnsError as e:
        raise DependencyFailed(str(e)) from None


# ---- changing ---------------------------------------------------------------------------------

def _certificate_event(dom):
    return "uploaded" if not dom.fallback_generated else "self-signed"


def add_domain(actor: eventlog.Actor, body: dict) -> Domain:
    domain = hostnames.normalise(body["domain"])
    provider = body["provider"]
    _check_provider(provider)
    dom = Domain(domain=domain, zone_name=_zone(domain, body.get("zoneName")), provider=provider,
                 config=_clean_config(provider, body.get("config")),
                 tls_config=_clean_tls(provider, body.get("tlsConfig")))
    if find(domain) is not None:
        raise Conflict(f"Domain {domain} already exists")
    _verify(provider, dom.zone_name, dom.config)
    dom.fallback_cert, dom.fallback_key, dom.fallback_generated = fallback_certificates.choose(domain, body)
    with database.atomic():
        try:
            dom.save(force_insert=True)
        except peewee.IntegrityError:
            raise Conflict(f"Domain {domain} already exists") from None
        fallback_certificates.install(dom)
    eventlog.record("domain.add", actor, domain=domain, provider=provider, tlsConfig=dom.tls_config,
                    fallbackCertificate=_certificate_event(dom))
    return dom


def update_domain(actor: eventlog.Actor, domain: str, body: dict) -> Domain:
    provider = body["provider"]
    _check_provider(provider)
    current = get_domain(domain)
    zone = _zone(current.domain, body["zoneName"]) if "zoneName" in body else current.zone_name
    cfg = _clean_config(provider, body.get("config"), current.config if provider == current.provider else None)
    tls = _clean_tls(provider, body.get("tlsConfig"), current.tls_config)
    # verified before the transaction: a slow provider must not hold the database
    _verify(provider, zone, cfg)
    with database.atomic():
        dom = get_domain(domain)
        previous = (dom.fallback_cert, dom.fallback_key)
        dom.zone_name, dom.provider, dom.config, dom.tls_config = zone, provider, cfg, tls
        dom.fallback_cert, dom.fallback_key, dom.fallback_generated = fallback_certificates.choose(
            dom.domain, body, dom)
        dom.save()
        fallback_certificates.install(dom, previous)
    eventlog.record("domain.update", actor, domain=dom.domain, provider=provider, tlsConfig=dom.tls_config,
                    fallbackCertificate=_certificate_event(dom))
    return dom


def remove_domain(actor: eventlog.Actor, domain: str) -> None:
    with database.atomic():
        dom = get_domain(domain)
        reason = in_use.reason(dom.domain)
        if reason:
            raise Conflict(reason)
        Domain.delete().where(Domain.domain == dom.domain).execute()
    fallback_certificates.remove(dom.domain)
    eventlog.record("domain.remove", actor, domain=dom.domain)
