"""Where S3-family storage may connect to: public addresses only, unless the operator allows local
ones (core.config `allow_local_storage_endpoints`, BERTH_ALLOW_LOCAL_STORAGE_ENDPOINTS=1, e.g. for
a MinIO on the same host or in the LAN; the test suite sets it for its S3 server on 127.0.0.1).

Why: the endpoint comes from the request (before activation from an unauthenticated one), and
Berth sends signed requests there; without this it could be pointed at the cloud metadata
service, at services on loopback or in the private network.

Refused: loopback, link-local (169.254/16, where the metadata services live, and fe80::/10),
private (10/8, 172.16/12, 192.168/16, fc00::/7), shared (100.64/10), unspecified, reserved,
multicast and broadcast addresses, IPv6 forms embedding such an IPv4 address, and the names
`localhost` / `*.localhost` whatever they resolve to.

Two checks:
- validation (check_endpoint): the endpoint's name is resolved and every address must be
  allowed, so a bad endpoint is a 400 naming `endpoint` before anything is sent;
- every connection (guard_client): the connection classes of the S3 client resolve the host
  they are about to connect to, refuse if any address is not allowed, and connect to a checked
  address. This covers what validation cannot: a name that resolves differently later (DNS
  rebinding), virtual-host names (`<bucket>.<endpoint host>`) and any redirect. botocore itself
  follows no HTTP redirect (it sends with urllib3 retries off); its S3 region redirect keeps the
  configured endpoint. With an HTTP proxy from the environment, the proxy is what is checked.
"""
import functools
import ipaddress
import socket
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from core import config, errors

if TYPE_CHECKING:
    from botocore.client import BaseClient

REFUSED = "must not point at a loopback, link-local or private network address"


class EndpointRefused(Exception):
    """A connection to a refused address was about to be made (nothing was sent)."""


def local_allowed() -> bool:
    return config.get().allow_local_storage_endpoints


def address_allowed(address: str) -> bool:
    """Whether `address` (an IP literal) is a public unicast address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None and not address_allowed(str(embedded)):
            return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_link_local)


def name_refused(host: str) -> bool:
    name = host.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


def resolve(host: str, port: int | None) -> list[str]:
    """Every address `host` resolves to (socket.gaierror if none)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def check_endpoint(url: str, field: str = "endpoint") -> None:
    """BadRequest naming `field` when the http(s) URL's host is, or resolves to, a refused
    address. A name that does not resolve now passes: connecting fails later, and the
    connection guard checks whatever it resolves to then."""
    if local_allowed():
        return
    parsed = urlparse(url)
    host = parsed.hostname or ""
    if name_refused(host):
        raise errors.BadRequest(REFUSED, field)
    try:
        addresses = resolve(host, parsed.port)
    except (socket.gaierror, UnicodeError, ValueError):
        return
    if not all(address_allowed(a) for a in addresses):
        raise errors.BadRequest(REFUSED, field)


def _checked_addresses(host: str, port: int) -> list[str]:
    if local_allowed():
        return [host]
    if name_refused(host):
        raise EndpointRefused(f"refused to connect to {host}: it is a local name")
    addresses = resolve(host, port)     # socket.gaierror: the caller reports it as urllib3 does
    if not all(address_allowed(a) for a in addresses):
        raise EndpointRefused(f"refused to connect to {host}: it resolves to a loopback, link-local "
                              "or private network address")
    return addresses


def _guarded(base):
    class Guarded(base):
        def _new_conn(self):
            from urllib3.exceptions import NameResolutionError
            host = self._dns_host
            try:
                addresses = _checked_addresses(host, self.port)
            except socket.gaierror as e:
                raise NameResolutionError(self.host, self, e) from e
            # Connect to an address just checked (the name is not resolved a second time);
            # `host` stays the name for the Host header, SNI and certificate checks.
            error = None
            for address in addresses:
                self._dns_host = address
                try:
                    return super()._new_conn()
                except Exception as e:      # urllib3's NewConnectionError etc.: try the next one
                    error = e
                finally:
                    self._dns_host = host
            raise error
    Guarded.__name__ = f"Guarded{base.__name__}"
    return Guarded


@functools.cache
def _pool_classes():
    from botocore.awsrequest import AWSHTTPConnection, AWSHTTPConnectionPool, AWSHTTPSConnection, AWSHTTPSConnectionPool
    http = type("GuardedHTTPPool", (AWSHTTPConnectionPool,), {"ConnectionCls": _guarded(AWSHTTPConnection)})
    https = type("GuardedHTTPSPool", (AWSHTTPSConnectionPool,), {"ConnectionCls": _guarded(AWSHTTPSConnection)})
    return {"http": http, "https": https}


def guard_client(client: "BaseClient") -> None:
    """Make every connection of the boto3 `client` go through the address check. botocore has no
    public hook for this: its HTTP session's table of connection pool classes is replaced in
    place. If that table is not where it is expected (a botocore change), fail closed."""
    try:
        table = client._endpoint.http_session._pool_classes_by_scheme
    except AttributeError:
        table = None
    if not isinstance(table, dict) or set(table) != {"http", "https"}:
        raise RuntimeError("cannot restrict the S3 client's connections with this botocore version")
    table.update(_pool_classes())
