"""Client addresses the proxy refuses (/network/blocklist): 403 for every request from them.

nginx's `deny` runs in the access phase, after `return` (rewrite phase): it would not stop the
catch-all 404, the HTTP->HTTPS redirects or the 503 state pages. So nginx.conf holds a `geo` map
of the blocked networks (`$berth_blocked`), and every server block starts with CHECK, which runs in
the server rewrite phase before any location. The networks are kept in <nginx dir>/blocklist.txt
(one normalised network a line, written only by Proxy.set_blocklist), so every render of nginx.conf
(start, vhost changes) includes them.
"""
import contextlib
import ipaddress
import os
from collections.abc import Iterable

from core import files
from reverse_proxy.layout import Layout

CHECK = "if ($berth_blocked) { return 403; }"


def _file(layout: Layout) -> str:
    return os.path.join(layout.root, "blocklist.txt")


def normalise(networks: Iterable[str]) -> list[str]:
    """Each entry as a network in canonical form (ValueError for one that is not), duplicates dropped:
    nothing but digits, hex, dots, colons and a prefix length ever reaches the nginx syntax."""
    out = [str(ipaddress.ip_network(n.strip(), strict=False)) for n in networks]
    return list(dict.fromkeys(out))


def read(layout: Layout) -> list[str]:
    text = files.read_text(_file(layout)) or ""
    return normalise(line for line in text.splitlines() if line.strip())


def store(layout: Layout, networks: list[str]) -> None:
    if not networks:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(_file(layout))
        return
    layout.make_dirs()
    files.write_atomic(_file(layout), "".join(n + "\n" for n in normalise(networks)), 0o600)


def geo(networks: list[str]) -> list[str]:
    """The http-level map: 1 for a client address inside a blocked network, else 0."""
    return ["geo $berth_blocked {", "    default 0;", *(f"    {n} 1;" for n in networks), "}"]
