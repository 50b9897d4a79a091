"""/network/blocklist: client addresses Berth's servers refuse, as Cloudron's text (one IP address or
CIDR network a line, `#` starts a comment).

Cloudron feeds the list to an ipset in the host firewall. Berth owns no firewall; it applies the list
where its own servers take connections: the managed nginx answers 403 to a blocked client on every
name (apps and the dashboard at my.<domain>; reverse_proxy/blocklist.py), and the mail server's
Postfix refuses it at connect (mail_server/maps.py, through the mail snapshot). Berth's own API
port (BERTH_HOST:BERTH_PORT) is not behind nginx and is not filtered: on a server it listens on
loopback or behind the firewall of the host, and the public way in is the dashboard vhost.

The text is stored as sent (comments kept, as Cloudron gives it back). A list that would cover the
caller's own address is refused with 409, so an admin cannot lock themselves out by accident.
"""
import ipaddress
from collections.abc import Callable, Iterable

import eventlog
import reverse_proxy
from core.errors import BadRequest, Conflict
from models import Setting, database

SETTING = "network_blocklist"
MAX_CHARS = 2 * 1024 * 1024
MAX_ENTRIES = 50_000

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def get() -> str:
    return Setting.read(SETTING) or ""


def parse(text: str) -> list[tuple[int, Network]]:
    """(line number, network) of each entry; 400 naming the first line that is not an address or
    network. A bare address is a /32 (/128); host bits after a prefix are ignored, as Cloudron does."""
    if not isinstance(text, str) or len(text) > MAX_CHARS:
        raise BadRequest(f"must be text of at most {MAX_CHARS} characters", "blocklist")
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        try:
            out.append((number, ipaddress.ip_network(entry, strict=False)))
        except ValueError:
            shown = entry if len(entry) <= 64 else entry[:64] + "..."
            raise BadRequest(f"line {number}: {shown!r} is not an IP address or network", "blocklist") from None
    if len(out) > MAX_ENTRIES:
        raise BadRequest(f"at most {MAX_ENTRIES} entries", "blocklist")
    return out


def networks() -> list[str]:
    """The stored entries as canonical networks (for the proxy and the mail server's snapshot)."""
    return [str(n) for _, n in parse(get())]


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    # A client on an IPv6 socket may show as ::ffff:a.b.c.d: it is the IPv4 address.
    mapped = getattr(ip, "ipv4_mapped", None)
    return mapped or ip


def check_not_self(entries: list[tuple[int, Network]], callers: Iterable[str]) -> None:
    """409 when an entry covers one of the caller's addresses."""
    for caller in filter(None, map(_address, callers)):
        for number, network in entries:
            if caller.version == network.version and caller in network:
                raise Conflict(f"blocklist: line {number} ({network}) covers your own address {caller}; "
                               "saving it would lock you out")


def save(actor: eventlog.Actor, text: str, callers: Iterable[str],
        apply_mail: Callable[[], None] | None = None) -> None:
    """Validate (400), refuse a list covering the caller (409), then store and apply in one
    transaction: the proxy first, then `apply_mail` (the mail layer's sync, which reads the stored
    list); when either refuses, the setting rolls back and the proxy gets the previous list again."""
    entries = parse(text)
    check_not_self(entries, callers)
    previous = networks()
    with database.atomic():
        Setting.put(SETTING, text)
        reverse_proxy.set_blocklist(str(n) for _, n in entries)
        try:
            if apply_mail is not None:
                apply_mail()
        except Exception:
            reverse_proxy.set_blocklist(previous)
            raise
    eventlog.record("cloudron.settings", actor, setting=SETTING, entries=len(entries))
