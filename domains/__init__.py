"""Domains: where apps live, how their DNS is handled and which certificate nginx serves for them.

DNS providers available: `noop` (Berth does nothing with DNS), `manual` (the admin creates the
records) and `wildcard` (a `*.domain` record points at this server). Programmable providers
(route53, cloudflare, ...) are part of the contract but not available yet: adding one is a 400.

Certificates: every domain has a fallback certificate, a self-signed one Berth makes for the
domain and `*.domain` unless the admin uploaded one (`fallbackCertificate`). The key is kept in
the database and in nginx's files, and never answered through the API.
"""
import peewee

import eventlog
import certificates
import reverse_proxy
from core.errors import BadRequest, Conflict, NotFound
from models import Domain, database

PROVIDERS = ("noop", "manual", "wildcard")
TLS_PROVIDERS = ("fallback", "letsencrypt-prod", "letsencrypt-staging")
CONFIG_FLAGS = ("hyphenatedSubdomains", "wildcard")
MASK = "\u25cf" * 8

# Functions `fn(domain) -> str | None` saying why `domain` cannot be removed (None: no objection).
# The apps module registers one (an app, alias or redirect on the domain); later mail and the
# dashboard domain will too. A list of callbacks keeps this module free of their imports.
_in_use_checks = []


def register_in_use_check(fn):
    """Register `fn(domain name) -> reason or None`; remove_domain answers 409 with the reason."""
    if fn not in _in_use_checks:
        _in_use_checks.append(fn)
    return fn


# ---- validation -------------------------------------------------------------------------------

def _name(domain):
    return (domain or "").strip().lower().rstrip(".")


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
    zone = _name(zone_name) or domain
    if zone != domain and not domain.endswith("." + zone):
        raise BadRequest(f"must be {domain} or a parent domain of it", "zoneName")
    return zone


def _fallback(domain, body, current=None):
    """(cert, key, generated) for the domain: the uploaded pair (checked), the current one when
    the request does not mention it, or a fresh self-signed one (new domain, or null = reset)."""
    if "fallbackCertificate" in body:
        pair = body["fallbackCertificate"]
        if pair is not None:
            if not isinstance(pair, dict):
                raise BadRequest("must be an object with cert and key", "fallbackCertificate")
            cert, key = certificates.validate_pair(pair.get("cert"), pair.get("key"), domain)
            return cert, key, False
    elif current is not None:
        return current.fallback_cert, current.fallback_key, current.fallback_generated
    if current is not None and current.fallback_generated:
        return current.fallback_cert, current.fallback_key, True
    cert, key = certificates.generate_self_signed(domain)
    return cert, key, True


# ---- reading ----------------------------------------------------------------------------------

def list_domains():
    return list(Domain.select().order_by(Domain.domain))


def find(domain):
    return Domain.get_or_none(Domain.domain == _name(domain))


def get_domain(domain):
    found = find(domain)
    if found is None:
        raise NotFound(f"No such domain: {domain}")
    return found


def masked_config(dom):
    """The provider config as the API shows it: secrets (none with today's providers) as MASK."""
    return {k: (MASK if k in ("token", "secretAccessKey", "apiKey", "password") else v)
            for k, v in (dom.config or {}).items()}


def fqdn(location, domain):
    """The hostname of an app at `location` on `domain` ("" = the domain itself), honouring the
    domain's hyphenatedSubdomains setting (`<location>-<domain>`)."""
    dom = domain if isinstance(domain, Domain) else get_domain(domain)
    if not location:
        return dom.domain
    joiner = "-" if (dom.config or {}).get("hyphenatedSubdomains") else "."
    return f"{location.lower()}{joiner}{dom.domain}"


def domain_for_host(hostname):
    """The Domain a hostname belongs to (the longest matching one), or None."""
    host = _name(hostname)
    if host.startswith("*."):
        host = host[2:]
    best = None
    for dom in Domain.select():
        d = dom.domain
        hyphenated = (dom.config or {}).get("hyphenatedSubdomains")
        if host == d or host.endswith("." + d) or (hyphenated and host.endswith("-" + d)):
            if best is None or len(d) > len(best.domain):
                best = dom
    return best


def certificate_files(hostname):
    """(cert path, key path) nginx should use for `hostname`: its domain's fallback certificate,
    written to <data dir>/certs/ if the files are missing or stale. A self-signed certificate close
    to its end is replaced first. NotFound when no domain covers the hostname."""
    dom = domain_for_host(hostname)
    if dom is None:
        raise NotFound(f"No domain of this Berth covers {hostname}")
    renew = certificates.RENEW_BEFORE_DAYS
    if dom.fallback_generated and certificates.expires_within(dom.fallback_cert, renew):
        dom.fallback_cert, dom.fallback_key = certificates.generate_self_signed(dom.domain)
        dom.save()
    cert_path, key_path, _ = certificates.write_files(dom.domain, dom.fallback_cert, dom.fallback_key)
    return cert_path, key_path


def needs_overwrite(domain, subdomain=""):
    """Would installing an app at `subdomain` overwrite a DNS record? With noop, manual and wildcard
    Berth never writes DNS records, so never."""
    get_domain(domain)
    return False


# ---- changing ---------------------------------------------------------------------------------

def _install_certificate(dom, previous=None):
    """Put the domain's certificate where nginx reads it; a running proxy reloads, and if nginx
    rejects the files the previous ones are put back (then the error is raised)."""
    _, _, changed = certificates.write_files(dom.domain, dom.fallback_cert, dom.fallback_key)
    if not changed:
        return
    try:
        reverse_proxy.reload()
    except reverse_proxy.ProxyError:
        if previous:
            certificates.write_files(dom.domain, *previous)
        else:
            certificates.remove_files(dom.domain)
        raise


def add_domain(actor, body):
    domain = _name(body["domain"])
    provider = body["provider"]
    _check_provider(provider)
    dom = Domain(domain=domain, zone_name=_zone(domain, body.get("zoneName")), provider=provider,
                 config=_clean_config(provider, body.get("config")),
                 tls_config=_clean_tls(provider, body.get("tlsConfig")))
    if find(domain) is not None:
        raise Conflict(f"Domain {domain} already exists")
    dom.fallback_cert, dom.fallback_key, dom.fallback_generated = _fallback(domain, body)
    with database.atomic():
        try:
            dom.save(force_insert=True)
        except peewee.IntegrityError:
            raise Conflict(f"Domain {domain} already exists") from None
        _install_certificate(dom)
    eventlog.record("domain.add", actor, domain=domain, provider=provider, tlsConfig=dom.tls_config,
                 fallbackCertificate="uploaded" if not dom.fallback_generated else "self-signed")
    return dom


def update_domain(actor, domain, body):
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
        dom.fallback_cert, dom.fallback_key, dom.fallback_generated = _fallback(dom.domain, body, dom)
        dom.save()
        _install_certificate(dom, previous)
    eventlog.record("domain.update", actor, domain=dom.domain, provider=provider, tlsConfig=dom.tls_config,
                 fallbackCertificate="uploaded" if not dom.fallback_generated else "self-signed")
    return dom


def remove_domain(actor, domain):
    with database.atomic():
        dom = get_domain(domain)
        for check in _in_use_checks:
            reason = check(dom.domain)
            if reason:
                raise Conflict(reason)
        Domain.delete().where(Domain.domain == dom.domain).execute()
    certificates.remove_files(dom.domain)
    eventlog.record("domain.remove", actor, domain=dom.domain)
