"""The interface every DNS provider implements, and its one error.

Names are relative to the zone: "" (or "@") is the zone apex, "my" is my.<zone>, "*" a wildcard.
Values are the record data in presentation form ("192.0.2.1", "10 mx.example.com.", a TXT string
without quotes). Every method talks to the provider; none caches.
"""
from typing import Protocol


class DnsError(Exception):
    """The provider refused or could not be reached; the message is the provider's own words
    (secrets never included)."""


class DnsProvider(Protocol):
    name: str      # the seed-era provider name (route53, cloudflare, rfc2136, noop, …)
    zone: str      # the zone this instance manages, e.g. "example.com"

    def verify(self) -> None:
        """Check the credentials and that the zone is reachable; raise DnsError otherwise."""

    def get_records(self, name: str, rtype: str) -> list[str]:
        """The values of the (name, type) record set ([] when there is none)."""

    def upsert_records(self, name: str, rtype: str, values: list[str], ttl: int = 300) -> None:
        """Make the (name, type) record set exactly `values`."""

    def delete_records(self, name: str, rtype: str) -> None:
        """Remove the (name, type) record set; no error when it does not exist."""
