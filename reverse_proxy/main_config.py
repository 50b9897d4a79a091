"""nginx.conf: global settings, the catch-all server (404 for names no app serves), and an
include of the vhosts. Written on every start and change; edits are overwritten."""
import socket

import psutil

from reverse_proxy import acme_challenges, blocklist, nginx_process, pages
from reverse_proxy.layout import Layout


def ipv6_available() -> bool:
    """Does this host have IPv6 at all (an address on some interface)? Without it, nginx cannot
    bind `[::]`, so an "every interface" proxy listens on IPv4 only."""
    return any(addr.family == socket.AF_INET6 for addrs in psutil.net_if_addrs().values() for addr in addrs)


def listens(address: str, port: int, extra: str = "", ipv6: bool | None = None) -> list[str]:
    """`listen` directives for `port` on `address` ("" = every interface, IPv4 and IPv6)."""
    extra = f" {extra}" if extra else ""
    if address:
        host = f"[{address}]" if ":" in address else address
        return [f"listen {host}:{port}{extra};"]
    out = [f"listen {port}{extra};"]
    if ipv6_available() if ipv6 is None else ipv6:
        out.append(f"listen [::]:{port}{extra};")
    return out


def _temp_paths(layout: Layout) -> list[str]:
    tmp = layout.tmp
    out = [f"client_body_temp_path {tmp}/client_body;", f"proxy_temp_path {tmp}/proxy;"]
    for module in ("fastcgi", "uwsgi", "scgi"):
        if module not in nginx_process.compiled_without():
            out.append(f"{module}_temp_path {tmp}/{module};")
    return out


def render(layout: Layout, http_port: int, https_port: int, address: str,
           default_certificate: tuple[str, str], sites_dir: str | None = None,
           acme_map: list[str] = (), blocked: list[str] = ()) -> str:
    """The text of nginx.conf; `sites_dir` replaces layout.sites for a candidate configuration;
    `acme_map` is the map of pending HTTP-01 answers (acme_challenges.render_map); `blocked` the
    refused client networks (blocklist.py)."""
    default_cert, default_key = default_certificate
    ipv6 = ipv6_available()
    all_listens = (listens(address, http_port, "default_server", ipv6)
                   + listens(address, https_port, "ssl http2 default_server", ipv6))
    lines = [
        "# Written by Berth on every start and change; edits are overwritten.",
        f"pid {layout.pid_file};",
        f"error_log {layout.error_log} warn;",
        "worker_processes auto;",
        "events { worker_connections 4096; }",
        "http {",
        "    default_type application/octet-stream;",
        "    log_format berth '$remote_addr [$time_local] $host \"$request\" $status $body_bytes_sent '",
        "                     '$request_time \"$http_user_agent\"';",
        f"    access_log {layout.logs}/access.log berth;",
        *("    " + p for p in _temp_paths(layout)),
        "    server_tokens off;",
        "    sendfile on;",
        "    server_names_hash_bucket_size 128;",
        "    server_names_hash_max_size 4096;",
        # ACME challenge URIs are long map keys (acme_challenges.render_map)
        "    map_hash_bucket_size 256;",
        # Upload limits are the app's business; stream request bodies to it instead of
        # spooling them to disk first, and never spool responses to temp files either.
        "    client_max_body_size 0;",
        "    proxy_request_buffering off;",
        "    proxy_max_temp_file_size 0;",
        "    ssl_protocols TLSv1.2 TLSv1.3;",
        "    ssl_prefer_server_ciphers off;",
        "    ssl_session_cache shared:berth_tls:10m;",
        "    ssl_session_timeout 1d;",
        "    map $http_upgrade $connection_upgrade { default upgrade; '' close; }",
        *("    " + line for line in acme_map),
        *("    " + line for line in blocklist.geo(blocked)),
        "    server {",
        *("        " + listen for listen in all_listens),
        "        server_name _;",
        "        " + blocklist.CHECK,
        f"        ssl_certificate {default_cert};",
        f"        ssl_certificate_key {default_key};",
        *("        " + line for line in acme_challenges.location()),
        "        location / {",
        "            default_type application/json;",
        f"            return 404 {pages.nginx_string(pages.NOT_FOUND_BODY)};",
        "        }",
        "    }",
        f"    include {sites_dir or layout.sites}/*.conf;",
        "}",
        "",
    ]
    return "\n".join(lines)
