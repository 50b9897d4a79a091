"""Domain records: adding, changing, reading and removing the domains apps live on.

DNS providers available: `noop` (Berth does nothing with DNS), `manual` (the admin creates the
records) and `wildcard` (a `*.domain` record points at this server). Programmable providers
(route53, cloudflare, ...) are part of the contract but not available yet: adding one is a 400.
"""
import peewee

import eventlog
from core.errors import BadRequest, Conflict, NotFound
from core.masking import MASK
from domains import fallback_certificates, hostnames, in_use
from models import Domain, database

PROVIDERS = ("noop", "manual", "wildcard")
TLS_PROVIDERS = ("fallback", "letsencrypt-prod", "letsencrypt-staging")
CONFIG_FLAGS = ("hyphenatedSubdomains", "wildcard")
SECRET_KEYS = ("token", "secretAccessKey", "apiKey", "password")


# ---- validation -------------------------------------------------------------------------------

def _check_provider(provider):
    if provider not in PROVIDERS:
        raise BadRequest(f"'{provider}' is not available yet; use one of {', '.join(PROVIDERS)}", "provider")


def _clean_config(provider, raw):
    """Keep the settings these providers have. They take no credentials, so nothing here is secret;
    keys of other providers (API tokens sent along by mistake) are dropped, never stored."""
    raw = raw or {}
    if not isinstance(raw, dict):
        raise BadRequest("must be an object", "config")
    clean = {}
    for flag in CONFIG_FLAGS:
        if flag in raw and raw[flag] is not None:
            if not isinstance(raw[flag], bool):
                raise BadRequest("must be a boolean", f"config.{flag}")
            clean[flag] = raw[flag]
    clean.setdefault("hyphenatedSubdomains", False)
    return clean


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
    """The provider config as the API shows it: secrets (none with today's providers) as MASK."""
    return {k: (MASK if k in SECRET_KEYS else v) for k, v in (dom.config or {}).items()}


def needs_overwrite(domain: str, subdomain: str = "") -> bool:
    """Would installing an app at `subdomain` overwrite a DNS record? With noop, manual and wildcard
    Berth never writes DNS records, so never."""
    get_domain(domain)
    return False


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
    with database.atomic():
        dom = get_domain(domain)
        provider = body["provider"]
        _check_provider(provider)
        previous = (dom.fallback_cert, dom.fallback_key)
        if "zoneName" in body:
            dom.zone_name = _zone(dom.domain, body["zoneName"])
        dom.provider = provider
        dom.config = _clean_config(provider, body.get("config"))
        dom.tls_config = _clean_tls(provider, body.get("tlsConfig"), dom.tls_config)
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
