"""Each domain's mail settings: incoming mail on or off, MAIL FROM validation, catch-all addresses,
the outbound relay and the signature (banner).

Mail domains follow domains: every domain has mail settings, and a domain without a stored row has
the seed's defaults (disabled, MAIL FROM validated, no catch-all, the built-in server as relay), so
adding a domain needs no mail code and an unknown domain is a 404 here as everywhere.

A relay other than the built-in server is tested (connect, TLS, authenticate) before it is saved:
a relay that cannot be reached or refuses the credentials is a 400 carrying its own words, and
nothing changes. Its password is masked on read; the mask sent back keeps the stored password.
"""
import peewee

import domains
import eventlog
from accounts import emails
from core.errors import BadRequest
from core.masking import MASK
from mail import sync
from models import database
from models.mail import MailDomain

PROVIDERS = ("cloudron-smtp", "external-smtp", "external-smtp-noauth", "ses-smtp", "elasticemail-smtp",
             "google-smtp", "mailgun-smtp", "mailjet-smtp", "postmark-smtp", "sendgrid-smtp", "sparkpost-smtp",
             "noop")
# Relays Berth connects to itself; the built-in server delivers directly and noop sends nothing.
EXTERNAL = tuple(p for p in PROVIDERS if p not in ("cloudron-smtp", "noop"))
MAX_BANNER = 16 * 1024
MAX_CATCH_ALL = 100


def _defaults(domain: str) -> MailDomain:
    return MailDomain(domain=domain, enabled=False, mail_from_validation=True, catch_all=[],
                      relay={"provider": "cloudron-smtp"}, banner={"text": "", "html": ""})


def get_settings(domain: str) -> MailDomain:
    """The mail settings of `domain` (404 when there is no such domain); defaults when none stored."""
    dom = domains.get_domain(domain)
    return MailDomain.get_or_none(MailDomain.domain == dom.domain) or _defaults(dom.domain)


def all_settings() -> list[MailDomain]:
    """Every domain's mail settings, stored or default, ordered by domain."""
    stored = {m.domain_id: m for m in MailDomain.select()}
    return [stored.get(d.domain) or _defaults(d.domain) for d in domains.list_domains()]


def masked_relay(relay: dict) -> dict:
    """The relay as the API shows it: the password, when one is stored, as MASK."""
    shown = dict(relay or {"provider": "cloudron-smtp"})
    if shown.get("password"):
        shown["password"] = MASK
    return shown


def view(md: MailDomain) -> dict:
    """The MailDomain shape of the spec."""
    return {"domain": md.domain_id, "enabled": md.enabled, "mailFromValidation": md.mail_from_validation,
            "catchAll": list(md.catch_all or []), "relay": masked_relay(md.relay),
            "banner": {"text": (md.banner or {}).get("text", ""), "html": (md.banner or {}).get("html", "")}}


def _save(domain: str, **fields: object) -> MailDomain:
    """Store the changed fields and hand the new state to the mail server in the same transaction:
    when the server refuses it (424), nothing is stored."""
    with database.atomic():
        md = _save_only(domain, **fields)
        sync.apply()
    return md


def _enable_first(domain: str) -> MailDomain:
    """Switching mail on may start the server's processes, which takes a while (rspamd compiles its
    rules): too long to hold the database's write lock. So the setting is committed first and the
    server applied after; when the server refuses, the setting is switched back and the refusal
    (424) is the answer, so the stored state again says what the server serves."""
    md = _save_only(domain, enabled=True)
    try:
        sync.apply()
    except Exception:
        _save_only(domain, enabled=False)
        raise
    return md


def _save_only(domain: str, **fields: object) -> MailDomain:
    with database.atomic():
        md = get_settings(domain)
        for name, value in fields.items():
            setattr(md, name, value)
        try:
            md.save(force_insert=MailDomain.get_or_none(MailDomain.domain == md.domain_id) is None)
        except peewee.IntegrityError:  # a concurrent first write: the row exists now
            md.save()
    return md


def _flag(value: object, field: str = "enabled") -> bool:
    if not isinstance(value, bool):
        raise BadRequest("must be a boolean", field)
    return value


# ---- changing -----------------------------------------------------------------------------------

def set_enabled(actor: eventlog.Actor, domain: str, enabled: object) -> None:
    """Incoming mail on or off. Enabling starts the server when it is the first mail domain (the
    server needs a domain to answer for) and writes the domain's mail DNS records when its provider
    writes records; a provider failure is in the event, the setting stays (as Cloudron's sync)."""
    enabled = _flag(enabled)
    md = get_settings(domain)
    if enabled and not md.enabled:
        md = _enable_first(domain)
    else:
        md = _save(domain, enabled=enabled)
    dns_error = None
    if enabled:
        from mail import status  # status imports settings for the relay check
        dns_error = status.write_records(md.domain_id)
    eventlog.record("mail.enabled" if enabled else "mail.disabled", actor, domain=md.domain_id,
                    **({"dnsError": dns_error} if dns_error else {}))


def set_mail_from_validation(actor: eventlog.Actor, domain: str, enabled: object) -> None:
    md = _save(domain, mail_from_validation=_flag(enabled))
    eventlog.record("mail.update", actor, domain=md.domain_id, mailFromValidation=md.mail_from_validation)


def set_catch_all(actor: eventlog.Actor, domain: str, addresses: object) -> None:
    """Where mail to an address nobody has goes (besides being rejected): a list of addresses."""
    if not isinstance(addresses, list):
        raise BadRequest("must be a list of email addresses", "addresses")
    if len(addresses) > MAX_CATCH_ALL:
        raise BadRequest(f"must hold at most {MAX_CATCH_ALL} addresses", "addresses")
    clean = list(dict.fromkeys(emails.check(a, "addresses") for a in addresses))
    md = _save(domain, catch_all=clean)
    eventlog.record("mail.update", actor, domain=md.domain_id, catchAll=clean)


def set_banner(actor: eventlog.Actor, domain: str, body: object) -> None:
    """The text and HTML signature the server adds to outgoing mail."""
    if not isinstance(body, dict):
        raise BadRequest("must be an object", "body")
    banner = {}
    for field, required in (("text", True), ("html", False)):
        value = body.get(field)
        if value is None and not required:
            value = ""
        if not isinstance(value, str):
            raise BadRequest("must be a string", field)
        if len(value) > MAX_BANNER:
            raise BadRequest(f"must be at most {MAX_BANNER} characters", field)
        banner[field] = value
    md = _save(domain, banner=banner)
    eventlog.record("mail.update", actor, domain=md.domain_id, banner=True)


def clean_relay(body: object, current: dict | None = None) -> dict:
    """The relay to store from a request body: only the fields of its provider, validated (400
    naming the field); a MASK password, or none, keeps `current`'s password."""
    if not isinstance(body, dict):
        raise BadRequest("must be an object", "body")
    provider = body.get("provider")
    if provider not in PROVIDERS:
        raise BadRequest(f"must be one of {', '.join(PROVIDERS)}", "provider")
    if provider not in EXTERNAL:
        return {"provider": provider}
    host = body.get("host")
    if not isinstance(host, str) or not host.strip() or len(host) > 253 or any(c.isspace() for c in host.strip()):
        raise BadRequest("must be a host name", "host")
    port = body.get("port", 587)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise BadRequest("must be a port number (1 to 65535)", "port")
    relay = {"provider": provider, "host": host.strip().lower(), "port": port,
             "acceptSelfSignedCerts": _flag(body.get("acceptSelfSignedCerts", False), "acceptSelfSignedCerts")}
    if provider != "external-smtp-noauth":
        username, password = body.get("username", ""), body.get("password", "")
        for field, value in (("username", username), ("password", password)):
            if not isinstance(value, str) or len(value) > 1024:
                raise BadRequest("must be a string of at most 1024 characters", field)
        if password == MASK:  # "unchanged"; with nothing stored there is nothing to keep
            password = current.get("password", "") if current and current.get("provider") in EXTERNAL else ""
        relay.update(username=username, password=password)
    return relay


def set_relay(actor: eventlog.Actor, domain: str, body: object) -> None:
    """Test the relay, then store it (the server's per-domain relay follows at once)."""
    current = get_settings(domain)
    relay = clean_relay(body, current.relay)
    if relay["provider"] in EXTERNAL:
        sync.test_relay(relay)  # 400 with the relay's own words; before any write
    md = _save(domain, relay=relay)
    eventlog.record("mail.update", actor, domain=md.domain_id, relay={
        k: v for k, v in relay.items() if k in ("provider", "host", "port", "username")})
