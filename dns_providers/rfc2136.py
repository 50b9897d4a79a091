"""`rfc2136`: TSIG-signed dynamic updates (RFC 2136) to any authoritative server that takes them
(BIND, PowerDNS, Knot), through dnspython.

Everything goes over TCP: updates must not be lost or replayed by a UDP retry, and answers with
many records do not fit UDP. Reads are signed queries to the same server, so what Berth sees is
what that server serves, not a cache. verify() proves both halves: a signed SOA query (the key is
known and the server is authoritative for the zone) and an update that adds and deletes one TXT
record in the same message (the key may write the zone; the zone ends as it was).
"""
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update

from dns_providers.base import DnsError
from dns_providers.passive import rdata_text

ALGORITHMS = ("hmac-sha256", "hmac-sha512", "hmac-sha384", "hmac-sha224", "hmac-sha1", "hmac-md5")
PROBE_NAME = "_berth-verify"
_TSIG_ERRORS = {dns.tsig.PeerBadKey: "BADKEY", dns.tsig.PeerBadSignature: "BADSIG",
                dns.tsig.PeerBadTime: "BADTIME", dns.tsig.PeerBadTruncation: "BADTRUNC"}


class Rfc2136Provider:
    name = "rfc2136"
    writes = True

    def __init__(self, zone: str, server: str, key_name: str, secret: str, port: int = 53,
                 algorithm: str = "hmac-sha256", timeout: float = 10.0):
        self.zone, self.server, self.port, self.timeout = zone, server, int(port), timeout
        self._origin = dns.name.from_text(zone)
        try:
            self._keyring = dns.tsigkeyring.from_text({key_name: (algorithm, secret)})
        except Exception:  # noqa: BLE001 - dnspython raises binascii/ValueError for a bad secret
            raise DnsError("the TSIG secret is not valid base64") from None
        self._key_name = dns.name.from_text(key_name)
        self._algorithm = dns.name.from_text(algorithm)

    # ---- plumbing -----------------------------------------------------------------------------

    def _send(self, message, what: str):
        try:
            response = dns.query.tcp(message, self.server, port=self.port, timeout=self.timeout)
        except dns.tsig.PeerError as e:
            # the server answered NOTAUTH with a TSIG error: it does not know the key or the signature
            tsig_error = _TSIG_ERRORS.get(type(e), type(e).__name__)
            raise DnsError(f"{self.server}:{self.port} answered NOTAUTH ({tsig_error}) to the {what} for "
                           f"{self.zone}: {e}") from None
        except (OSError, EOFError, dns.exception.DNSException) as e:
            raise DnsError(f"{self.server}:{self.port} could not be asked ({what}): {e or type(e).__name__}") from None
        rcode = response.rcode()
        if rcode != dns.rcode.NOERROR and not (what == "query" and rcode == dns.rcode.NXDOMAIN):
            raise DnsError(f"{self.server}:{self.port} answered {dns.rcode.to_text(rcode)} to the {what} "
                           f"for {self.zone}")
        return response

    def _sign(self, message):
        message.use_tsig(self._keyring, keyname=self._key_name, algorithm=self._algorithm)
        return message

    def _update(self):
        return dns.update.UpdateMessage(self._origin, keyring=self._keyring, keyname=self._key_name,
                                        keyalgorithm=self._algorithm)

    def _name(self, name: str):
        return dns.name.from_text(name or "@", self._origin)

    # ---- the interface ------------------------------------------------------------------------

    def verify(self) -> None:
        response = self._send(self._sign(dns.message.make_query(self._origin, "SOA")), "query")
        if response.rcode() != dns.rcode.NOERROR or not (response.flags & dns.flags.AA) or not response.answer:
            raise DnsError(f"{self.server}:{self.port} is not authoritative for {self.zone}")
        update = self._update()
        update.add(PROBE_NAME, 1, "TXT", '"berth"')
        update.delete(PROBE_NAME, "TXT")
        self._send(update, "update")

    def get_records(self, name: str, rtype: str) -> list[str]:
        query = self._sign(dns.message.make_query(self._name(name), rtype))
        response = self._send(query, "query")
        values = []
        for rrset in response.answer:
            if rrset.rdtype == dns.rdatatype.from_text(rtype) and rrset.name == self._name(name):
                values.extend(rdata_text(r) for r in rrset)
        return sorted(values)

    def upsert_records(self, name: str, rtype: str, values: list[str], ttl: int = 300) -> None:
        update = self._update()
        rdatas = [_txt(v) if rtype.upper() == "TXT" else v for v in values]
        update.replace(name or "@", ttl, rtype, *rdatas)
        self._send(update, "update")

    def delete_records(self, name: str, rtype: str) -> None:
        update = self._update()
        update.delete(name or "@", rtype)
        self._send(update, "update")


def _txt(value: str) -> str:
    """A TXT value in presentation form: one string holds at most 255 bytes, so a longer value (a
    DKIM key) is several strings, which readers join again (rdata_text)."""
    chunks = [value[i:i + 255] for i in range(0, len(value), 255)] or [""]
    return " ".join(f'"{c}"' for c in chunks)
