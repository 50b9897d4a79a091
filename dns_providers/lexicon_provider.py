"""The vendor APIs (route53, cloudflare, digitalocean, ...) through dns-lexicon, one adapter for all.

Lexicon's `Client` is not used: it guesses the zone through tldextract (which downloads the public
suffix list) or a DNS lookup, while Berth knows the zone. The adapter builds lexicon's provider
class for the zone directly and calls its public methods (authenticate, list_records,
create_record, delete_record), the same calls `Client` makes.

`api_endpoint` replaces the vendor's base URL for providers that keep it in `api_endpoint`
(cloudflare, digitalocean, vultr, godaddy, namecom, porkbun, gandi, ...). It is a constructor
argument only, never read from a domain's stored config: an admin-supplied URL would send the
credentials wherever it points. The tests use it to talk to a local server speaking the vendor API.

Errors: lexicon lets `requests` errors through. The message kept is the vendor's own (from the
JSON body when there is one) with the HTTP status; URLs lose their query (namecheap puts the key
there) and every configured secret is replaced by the mask, so nothing secret reaches a 400 body,
a task log or the event log.

Lexicon is imported by `_provider`, when a vendor API is first called: with its tldextract and
filelock it is ~60 modules that a server worker (which imports this module with the registry)
need not carry while no domain uses a vendor API (issue 18, idle memory).
"""
import importlib
import re

import requests

from core.masking import MASK
from dns_providers.base import DnsError

BY_VALUE = {"gandi"}   # lexicon providers whose record ids are not per record (see _delete)


def _absolute(name: str, zone: str) -> str:
    return zone if name in ("", "@") else f"{name}.{zone}"


def _vendor_words(body) -> str:
    """The human part of a vendor error body: cloudflare `errors[].message`, digitalocean/vultr
    `message`/`error`, godaddy `message`, ..."""
    if isinstance(body, dict):
        for key in ("errors", "error", "message", "messages", "detail", "description", "reason"):
            if key in body:
                found = _vendor_words(body[key])
                if found:
                    return found
        return ""
    if isinstance(body, list):
        return "; ".join(w for w in (_vendor_words(b) for b in body) if w)
    return str(body).strip() if body not in (None, "") else ""


class LexiconProvider:
    writes = True

    def __init__(self, name: str, zone: str, lexicon_name: str, options: dict, secrets: list[str] = (),
                 api_endpoint: str | None = None, ttl: int = 300):
        self.name, self.zone = name, zone
        self._lexicon_name, self._options = lexicon_name, dict(options)
        self._secrets = [s for s in secrets if s]
        self._api_endpoint, self._ttl = api_endpoint, ttl

    # ---- plumbing -----------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        text = re.sub(r"(https?://[^\s?]+)\?\S*", r"\1", text)
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def _error(self, e: Exception) -> DnsError:
        # some providers wrap the HTTP error (hetzner: AuthenticationError() from err): the
        # vendor's words are in the cause
        cause = e
        while cause is not None and not isinstance(cause, requests.RequestException):
            cause = cause.__cause__ or cause.__context__
        if cause is not None and not str(e):
            e = cause
        if isinstance(e, requests.HTTPError) and e.response is not None:
            try:
                words = _vendor_words(e.response.json())
            except ValueError:
                words = (e.response.text or "").strip()[:300]
            status = f"{e.response.status_code} {e.response.reason or ''}".strip()
            message = f"{self.name}: {status}" + (f": {words}" if words else "")
        elif isinstance(e, requests.RequestException):
            message = f"{self.name}: could not reach the API ({type(e).__name__}: {e})"
        else:
            message = f"{self.name}: {e or type(e).__name__}"
        return DnsError(self._scrub(message))

    def _provider(self):
        from lexicon.config import ConfigResolver  # see the module docstring
        config = ConfigResolver().with_dict({
            "provider_name": self._lexicon_name, "domain": self.zone, "ttl": self._ttl,
            self._lexicon_name: self._options})
        module = importlib.import_module(f"lexicon._private.providers.{self._lexicon_name}")
        provider = module.Provider(config)
        if self._api_endpoint:
            # hetzner delegates to an inner provider (old DNS API or Cloud API, by token length)
            # that keeps its own endpoint (Cloud: the class attribute API_ENDPOINT)
            for target in (provider, getattr(provider, "_hetzner_impl", None)):
                if target is None:
                    continue
                # keep the vendor's own trailing-slash convention (linode joins "domains/...")
                original = str(getattr(target, "api_endpoint", None) or getattr(target, "API_ENDPOINT", ""))
                endpoint = self._api_endpoint.rstrip("/") + ("/" if original.endswith("/") else "")
                target.api_endpoint = endpoint
                if hasattr(target, "API_ENDPOINT"):
                    target.API_ENDPOINT = endpoint
        provider.authenticate()
        return provider

    def _run(self, work):
        try:
            return work(self._provider())
        except DnsError:
            raise
        except Exception as e:  # noqa: BLE001 - lexicon and the vendor SDKs raise anything
            raise self._error(e) from None

    def _delete(self, provider, name: str, rtype: str, record: dict) -> None:
        # gandi's record id is the rrset *name*: deleting by it would take every type of that
        # name (the AAAA with the A); by (type, name, value) it removes just that value
        identifier = None if self._lexicon_name in BY_VALUE else record.get("id")
        provider.delete_record(identifier, rtype, _absolute(name, self.zone), record["content"])

    def _matching(self, provider, name: str, rtype: str) -> list[dict]:
        fqdn = _absolute(name, self.zone).lower()
        return [r for r in provider.list_records(rtype, fqdn)
                if str(r.get("name", "")).lower().rstrip(".") == fqdn and r.get("type", rtype).upper() == rtype.upper()]

    # ---- the interface ------------------------------------------------------------------------

    def verify(self) -> None:
        # authenticate() finds the zone with the credentials; listing proves they may read it
        self._run(lambda p: p.list_records("SOA", self.zone) and None)

    def get_records(self, name: str, rtype: str) -> list[str]:
        return self._run(lambda p: sorted(str(r["content"]) for r in self._matching(p, name, rtype)))

    def upsert_records(self, name: str, rtype: str, values: list[str], ttl: int = 300) -> None:
        def work(p):
            existing = self._matching(p, name, rtype)
            have = {str(r["content"]) for r in existing}
            for record in existing:
                if str(record["content"]) not in values:
                    self._delete(p, name, rtype, record)
            for value in values:
                if value not in have:
                    p.create_record(rtype, _absolute(name, self.zone), value)
        self._ttl = ttl
        self._run(work)

    def delete_records(self, name: str, rtype: str) -> None:
        def work(p):
            for record in self._matching(p, name, rtype):
                self._delete(p, name, rtype, record)
        self._run(work)
