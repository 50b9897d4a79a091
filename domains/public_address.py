"""This server's public address: what app DNS records point at (domains.dns_records), what
GET /cloudron/server_ip answers and what dynamic DNS watches (domains.dynamic_dns).

How it is found is the `sysinfo_config` setting (Cloudron's names):
  generic            ask a what-is-my-IP service (core.config.ip_lookup_url, BERTH_IP_LOOKUP_URL);
  fixed              the address the admin gave (`ip`/`ipv4`, and/or `ipv6`);
  network-interface  the IPv4 (and global IPv6) address of interface `ifname` (psutil).
The IPv6 address (detect_ipv6, what AAAA records hold) comes from `fixed` or `network-interface`;
`generic` finds none (the lookup service answers over whichever protocol reached it).
With nothing stored, BERTH_PUBLIC_IP is the fixed address when set (so a server configured through
its environment behaves as before), else `generic`.

The lookup URL is deliberately not a setting: an admin-settable URL the server fetches would be a
way to make it request anything on its own network.
"""
import contextlib
import ipaddress
import socket
import urllib.error
import urllib.request

import psutil

import eventlog
from core import config
from core.errors import BadRequest
from models import Setting

SETTING = "sysinfo_config"
PROVIDERS = ("generic", "fixed", "network-interface")
LOOKUP_TIMEOUT_SECS = 5


def _ip(value: object, version: int, field: str) -> str:
    try:
        ip = ipaddress.ip_address(str(value).strip())
    except ValueError:
        raise BadRequest(f"{value!r} is not an IPv{version} address", field) from None
    if ip.version != version:
        raise BadRequest(f"{value!r} is not an IPv{version} address", field)
    return str(ip)


def get_config() -> dict:
    """The stored sysinfo config, or what applies without one (see the module's docstring)."""
    stored = Setting.read(SETTING)
    if isinstance(stored, dict) and stored.get("provider") in PROVIDERS:
        return stored
    public_ip = config.get().public_ip
    if public_ip:
        field = "ipv6" if ipaddress.ip_address(public_ip).version == 6 else "ip"
        return {"provider": "fixed", field: public_ip}
    return {"provider": "generic"}


def set_config(actor: eventlog.Actor, body: dict) -> dict:
    """Check and store a sysinfo config; 400 naming the field for a bad provider, address or
    interface. Returns what was stored."""
    provider = body.get("provider")
    if provider not in PROVIDERS:
        raise BadRequest(f"must be one of {', '.join(PROVIDERS)}", "provider")
    clean = {"provider": provider}
    if provider == "fixed":
        v4 = body.get("ipv4") if body.get("ipv4") not in (None, "") else body.get("ip")
        if v4 not in (None, ""):
            clean["ip"] = _ip(v4, 4, "ipv4" if body.get("ipv4") not in (None, "") else "ip")
        if body.get("ipv6") not in (None, ""):
            clean["ipv6"] = _ip(body["ipv6"], 6, "ipv6")
        if len(clean) == 1:
            raise BadRequest("is required for the fixed provider", "ip")
    elif provider == "network-interface":
        ifname = body.get("ifname")
        if not isinstance(ifname, str) or not ifname:
            raise BadRequest("is required for the network-interface provider", "ifname")
        if ifname not in psutil.net_if_addrs():
            raise BadRequest(f"no network interface named {ifname!r}", "ifname")
        clean["ifname"] = ifname
    Setting.put(SETTING, clean)
    eventlog.record("settings.sysinfo_config", actor, **clean)
    return clean


def _interface_address(ifname: str, family: int = socket.AF_INET) -> str | None:
    for addr in psutil.net_if_addrs().get(ifname, []):
        if addr.family != family:
            continue
        if family == socket.AF_INET6:
            # link-local (fe80::, with a %zone suffix), loopback and private ranges are not public
            ip = ipaddress.ip_address(addr.address.split("%")[0])
            if not ip.is_global:
                continue
            return str(ip)
        return addr.address
    return None


def lookup(url: str | None = None) -> str | None:
    """Ask the lookup service (plain text, or JSON with an `ip` field) for our address; None when
    it cannot be reached or answers something that is not an IP address."""
    url = url or config.get().ip_lookup_url
    try:
        with urllib.request.urlopen(url, timeout=LOOKUP_TIMEOUT_SECS) as r:   # noqa: S310 - http(s), checked in config
            text = r.read(256).decode("ascii", "replace").strip()
    except (OSError, urllib.error.URLError, ValueError):
        return None
    if text.startswith("{"):
        import json
        with contextlib.suppress(ValueError, AttributeError):
            text = str(json.loads(text).get("ip", ""))
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def detect() -> str | None:
    """The public IPv4 address as the sysinfo config finds it now, what A records hold (None when
    it cannot be found)."""
    cfg = get_config()
    if cfg["provider"] == "fixed":
        found = cfg.get("ip")
    elif cfg["provider"] == "network-interface":
        found = _interface_address(cfg.get("ifname", ""))
    else:
        found = lookup()
    return found if found and ipaddress.ip_address(found).version == 4 else None


def detect_ipv6() -> str | None:
    """The public IPv6 address (what AAAA records hold): the fixed one, or the interface's global
    one; None otherwise (`generic` does not find one)."""
    cfg = get_config()
    if cfg["provider"] == "fixed":
        found = cfg.get("ipv6")
    elif cfg["provider"] == "network-interface":
        found = _interface_address(cfg.get("ifname", ""), socket.AF_INET6)
    else:
        found = None
    return found if found and ipaddress.ip_address(found).version == 6 else None


def server_ip() -> str:
    """GET /cloudron/server_ip: the IPv4 address (a fixed IPv6 one without it), "" when unknown."""
    return detect() or get_config().get("ipv6") or ""
