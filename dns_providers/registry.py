"""The seed-era provider names, the config fields each takes (Cloudron's names), and the one
function that builds a provider for a domain.

Cloudron field -> lexicon option, per vendor (what `create` passes):
    route53       accessKeyId -> auth_access_key, secretAccessKey -> auth_access_secret (region: stored, unused:
                  Route 53 is global)
    cloudflare    token -> auth_token, email -> auth_username (only when tokenType is "GlobalApiKey")
    digitalocean, linode (lexicon linode4), vultr, hetzner, gandi (REST API)   token -> auth_token
    godaddy       apiKey -> auth_key, apiSecret -> auth_secret
    gcdns         credentials {client_email, private_key, ...} -> auth_service_account_info (base64::)
                  (projectId: stored; lexicon reads the project from the credentials)
    namecom       username -> auth_username, token -> auth_token
    namecheap     username -> auth_username, token -> auth_token (+ auth_client_ip = the public address)
    netcup        customerNumber -> auth_customer_id, apiKey -> auth_api_key, apiPassword -> auth_api_password
    porkbun       apikey -> auth_key, secretapikey -> auth_secret
and Berth's own: rfc2136 (server, port, keyName, algorithm, secret), noop, manual, wildcard.
The rfc2136 module (dnspython's update, TSIG and query modules) is imported when an rfc2136 config
is checked or a provider made, not with the registry (see dns_providers.passive: idle memory).
"""
import base64
import dataclasses
import ipaddress
import json

from core import config as core_config
from core.errors import BadRequest
from core.masking import MASK
from dns_providers.base import DnsProvider
from dns_providers.lexicon_provider import LexiconProvider
from dns_providers.passive import PassiveProvider


@dataclasses.dataclass(frozen=True)
class Field:
    key: str                 # Cloudron's name in the domain config
    option: str | None       # lexicon's auth option (None: Berth-side only)
    secret: bool = False     # masked on read; MASK sent back keeps the stored value
    required: bool = True
    kind: type = str


_TOKEN = (Field("token", "auth_token", secret=True),)

# name -> (lexicon provider module, fields, fixed lexicon options)
VENDORS = {
    "route53": ("route53", (Field("accessKeyId", "auth_access_key"),
                            Field("secretAccessKey", "auth_access_secret", secret=True),
                            Field("region", None, required=False)), {}),
    "cloudflare": ("cloudflare", (Field("token", "auth_token", secret=True),
                                  Field("email", "auth_username", required=False),
                                  Field("tokenType", None, required=False)), {}),
    "digitalocean": ("digitalocean", _TOKEN, {}),
    "gandi": ("gandi", _TOKEN, {"api_protocol": "rest"}),
    "godaddy": ("godaddy", (Field("apiKey", "auth_key", secret=True),
                            Field("apiSecret", "auth_secret", secret=True)), {}),
    "gcdns": ("googleclouddns", (Field("projectId", None),
                                 Field("credentials", "auth_service_account_info", secret=True, kind=dict)), {}),
    "linode": ("linode4", _TOKEN, {}),
    "namecom": ("namecom", (Field("username", "auth_username"), Field("token", "auth_token", secret=True)), {}),
    "namecheap": ("namecheap", (Field("username", "auth_username"), Field("token", "auth_token", secret=True)), {}),
    "netcup": ("netcup", (Field("customerNumber", "auth_customer_id"),
                          Field("apiKey", "auth_api_key", secret=True),
                          Field("apiPassword", "auth_api_password", secret=True)), {}),
    "vultr": ("vultr", _TOKEN, {}),
    "hetzner": ("hetzner", _TOKEN, {}),
    "porkbun": ("porkbun", (Field("apikey", "auth_key", secret=True),
                            Field("secretapikey", "auth_secret", secret=True)), {}),
}
RFC2136_FIELDS = (Field("server", None), Field("port", None, required=False, kind=int),
                  Field("keyName", None), Field("algorithm", None, required=False),
                  Field("secret", None, secret=True))
PASSIVE = ("noop", "manual", "wildcard")
PROVIDERS = PASSIVE + ("rfc2136",) + tuple(VENDORS)
FLAGS = ("hyphenatedSubdomains", "wildcard")   # Berth's own settings, beside any provider's fields


def fields(provider: str) -> tuple:
    if provider == "rfc2136":
        return RFC2136_FIELDS
    return VENDORS[provider][1] if provider in VENDORS else ()


def secret_keys(provider: str) -> set[str]:
    return {f.key for f in fields(provider) if f.secret}


def writes(provider: str) -> bool:
    """Does Berth write records through this provider (so records are its business)?"""
    return provider not in PASSIVE


def clean_config(provider: str, raw: object, current: dict | None = None) -> dict:
    """The config to store: the provider's fields (checked) and the flags; unknown keys dropped
    (never stored: credentials of another provider sent by mistake). A secret sent back as MASK
    keeps the stored value, but only when the provider did not change."""
    if provider not in PROVIDERS:
        raise BadRequest(f"must be one of {', '.join(PROVIDERS)}", "provider")
    raw = raw or {}
    if not isinstance(raw, dict):
        raise BadRequest("must be an object", "config")
    current = current or {}
    clean = {}
    for flag in FLAGS:
        if raw.get(flag) is not None:
            if not isinstance(raw[flag], bool):
                raise BadRequest("must be a boolean", f"config.{flag}")
            clean[flag] = raw[flag]
    clean.setdefault("hyphenatedSubdomains", False)
    for f in fields(provider):
        value = raw.get(f.key)
        if f.secret and value == MASK:
            value = current.get(f.key)
        if value in (None, ""):
            if f.required:
                raise BadRequest("is required", f"config.{f.key}")
            continue
        if f.kind is int:
            if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit() \
                    or not 1 <= int(value) <= 65535:
                raise BadRequest("must be a port number", f"config.{f.key}")
            value = int(value)
        elif not isinstance(value, f.kind):
            raise BadRequest(f"must be {'an object' if f.kind is dict else 'a string'}", f"config.{f.key}")
        clean[f.key] = value.strip() if isinstance(value, str) else value
    if provider == "rfc2136":
        _check_rfc2136(clean)
    return clean


def _check_rfc2136(clean):
    from dns_providers.rfc2136 import ALGORITHMS
    try:
        ipaddress.ip_address(clean["server"])
    except ValueError:
        raise BadRequest("must be the IP address of the DNS server", "config.server") from None
    clean.setdefault("port", 53)
    clean["algorithm"] = clean.get("algorithm", "hmac-sha256").lower()
    if clean["algorithm"] not in ALGORITHMS:
        raise BadRequest(f"must be one of {', '.join(ALGORITHMS)}", "config.algorithm")


def masked(provider: str, cfg: dict) -> dict:
    keys = secret_keys(provider) | {"token", "secret", "secretAccessKey", "apiKey", "apiSecret", "password"}
    return {k: (MASK if k in keys else v) for k, v in (cfg or {}).items()}


def create(provider: str, zone: str, cfg: dict, api_endpoint: str | None = None) -> DnsProvider:
    """The provider object for a domain's stored provider name and config."""
    cfg = cfg or {}
    if provider in PASSIVE:
        return PassiveProvider(provider, zone, reads=provider != "noop")
    if provider == "rfc2136":
        from dns_providers.rfc2136 import Rfc2136Provider
        return Rfc2136Provider(zone, cfg["server"], cfg["keyName"], cfg["secret"], port=cfg.get("port", 53),
                               algorithm=cfg.get("algorithm", "hmac-sha256"))
    lexicon_name, flds, fixed = VENDORS[provider]
    options = dict(fixed)
    for f in flds:
        if f.option and cfg.get(f.key) not in (None, ""):
            options[f.option] = cfg[f.key]
    if provider == "cloudflare" and cfg.get("tokenType") == "ApiToken":
        options.pop("auth_username", None)
    if provider == "gcdns" and isinstance(cfg.get("credentials"), dict):
        blob = json.dumps(cfg["credentials"]).encode()
        options["auth_service_account_info"] = "base64::" + base64.b64encode(blob).decode()
    if provider == "namecheap" and core_config.get().public_ip:
        options["auth_client_ip"] = core_config.get().public_ip
    secrets = [str(cfg[f.key]) for f in flds if f.secret and isinstance(cfg.get(f.key), str)]
    if provider == "gcdns" and isinstance(cfg.get("credentials"), dict):
        secrets += [str(cfg["credentials"].get("private_key") or "")]
    return LexiconProvider(provider, zone, lexicon_name, options, secrets=secrets, api_endpoint=api_endpoint)
