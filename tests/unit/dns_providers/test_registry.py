"""dns_providers.registry: which config each provider takes (Cloudron's field names), what is kept,
what is secret, and what reaches lexicon."""
import base64
import json

import pytest

import dns_providers
from core.errors import BadRequest
from core.masking import MASK
from dns_providers import registry
from dns_providers.lexicon_provider import LexiconProvider
from dns_providers.rfc2136 import Rfc2136Provider

SECRET = base64.b64encode(b"k" * 32).decode()
RFC = {"server": "127.0.0.1", "port": 5353, "keyName": "k", "algorithm": "hmac-sha256", "secret": SECRET}


def test_every_seed_era_name_and_rfc2136_is_known():
    for name in ("route53", "gcdns", "digitalocean", "gandi", "godaddy", "linode", "namecheap", "namecom",
                 "netcup", "vultr", "hetzner", "porkbun", "cloudflare", "noop", "manual", "wildcard", "rfc2136"):
        assert name in dns_providers.PROVIDERS


def test_passive_providers_keep_only_the_flags():
    cfg = registry.clean_config("manual", {"hyphenatedSubdomains": True, "token": "sent-by-mistake"})
    assert cfg == {"hyphenatedSubdomains": True}
    assert not registry.writes("manual") and registry.writes("rfc2136") and registry.writes("cloudflare")


@pytest.mark.parametrize("provider, raw, field", [
    ("cloudflare", {}, "config.token"),
    ("godaddy", {"apiKey": "a"}, "config.apiSecret"),
    ("rfc2136", {**RFC, "server": "ns.example.test"}, "config.server"),
    ("rfc2136", {**RFC, "port": 70000}, "config.port"),
    ("rfc2136", {**RFC, "algorithm": "rot13"}, "config.algorithm"),
    ("route53", {"accessKeyId": 5, "secretAccessKey": "s"}, "config.accessKeyId"),
    ("gcdns", {"projectId": "p", "credentials": "not an object"}, "config.credentials"),
    ("bogus", {}, "provider"),
])
def test_bad_config_is_400_naming_the_field(provider, raw, field):
    with pytest.raises(BadRequest) as e:
        registry.clean_config(provider, raw)
    assert e.value.field == field


def test_mask_sent_back_keeps_the_secret_and_unknown_keys_are_dropped():
    stored = registry.clean_config("rfc2136", {**RFC, "junk": 1})
    assert stored == {**RFC, "hyphenatedSubdomains": False}
    shown = registry.masked("rfc2136", stored)
    assert shown["secret"] == MASK and shown["server"] == "127.0.0.1"
    again = registry.clean_config("rfc2136", shown, stored)
    assert again["secret"] == SECRET
    # a mask with nothing stored behind it (another provider before) is no secret at all
    with pytest.raises(BadRequest):
        registry.clean_config("rfc2136", shown, None)


def test_create_maps_cloudron_fields_to_lexicon_options():
    p = registry.create("cloudflare", "z.test", {"token": "t0k", "email": "a@z.test", "tokenType": "GlobalApiKey"})
    assert isinstance(p, LexiconProvider)
    assert p._options == {"auth_token": "t0k", "auth_username": "a@z.test"}
    p = registry.create("cloudflare", "z.test", {"token": "t0k", "email": "a@z.test", "tokenType": "ApiToken"})
    assert p._options == {"auth_token": "t0k"}
    p = registry.create("netcup", "z.test", {"customerNumber": "1", "apiKey": "k", "apiPassword": "p"})
    assert p._options == {"auth_customer_id": "1", "auth_api_key": "k", "auth_api_password": "p"}
    p = registry.create("gandi", "z.test", {"token": "t"})
    assert p._options == {"api_protocol": "rest", "auth_token": "t"}
    creds = {"client_email": "x@y", "private_key": "PRIVATE"}
    p = registry.create("gcdns", "z.test", {"projectId": "p", "credentials": creds})
    info = p._options["auth_service_account_info"]
    assert info.startswith("base64::") and json.loads(base64.b64decode(info[8:])) == creds
    assert "PRIVATE" in p._secrets
    assert isinstance(registry.create("rfc2136", "z.test", RFC), Rfc2136Provider)


def test_rfc2136_secret_that_is_not_base64_is_a_dns_error():
    with pytest.raises(dns_providers.DnsError, match="base64"):
        registry.create("rfc2136", "z.test", {**RFC, "secret": "not base64!"})
