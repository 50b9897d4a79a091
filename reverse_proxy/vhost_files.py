"""One vhost file per app (sites/app-<id>.conf): what it is made of (a spec), its text, reading it back.

Every name is checked here, at render time, whatever the caller validated before: a hostname,
app id, port or certificate path that could break out of its place in the nginx syntax is
refused with ValueError (a programmer error: the apps layer validates what users send).
The spec is kept as JSON in the file's first line, so the proxy can rewrite every vhost by
itself (new ports, certificate files restored).
"""
import json
import os
import re
from collections.abc import Callable, Iterable

from core.errors import Conflict
from reverse_proxy import acme_challenges, blocklist, pages, proxy_settings

STATES = ("running", "stopped", "installing", "error")
HEADER = "# berth-vhost"
_HOST = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_APP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_UNSAFE_IN_PATH = " ;{}'\"$\n\r\t#\\"
_SPEC_KEYS = {"app_id", "fqdn", "upstream_port", "aliases", "redirects", "state"}

# hostname -> (certificate path, key path) that nginx should serve for it.
CertificateLookup = Callable[[str], tuple[str, str]]


def check_host(name: str, what: str = "hostname") -> str:
    """`name` lowercased when it is a hostname (a leading `*.` allowed), else ValueError."""
    if not isinstance(name, str) or len(name) > 253 or not _HOST.fullmatch(name.lower()):
        raise ValueError(f"{what}: {name!r} is not a valid hostname")
    return name.lower()


def file_name(app_id: str) -> str:
    if not isinstance(app_id, str) or not _APP_ID.fullmatch(app_id):
        raise ValueError(f"{app_id!r} is not a valid app id")
    return f"app-{app_id}.conf"


def check_port(port: int) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"upstream port must be a port number (1-65535), not {port!r}")
    return port


def spec(app_id: str, fqdn: str, upstream_port: int | None = None, aliases: Iterable[str] = (),
         redirects: Iterable[str] = (), state: str = "running", proxy_config: dict | None = None) -> dict:
    """Check and normalise what a vhost is made of. `proxy_config`: the app's reverse proxy settings
    (proxy_settings.py), recorded only when it sets something."""
    file_name(app_id)
    fqdn = check_host(fqdn, "fqdn")
    if "*" in fqdn:
        raise ValueError(f"fqdn: {fqdn!r} must not be a wildcard")
    aliases = [check_host(a, "aliases") for a in aliases or ()]
    redirects = [check_host(r, "redirects") for r in redirects or ()]
    if state not in STATES:
        raise ValueError(f"state must be one of {', '.join(STATES)}, not {state!r}")
    if state == "running" or upstream_port is not None:
        check_port(upstream_port)
    served = list(dict.fromkeys([fqdn] + aliases))
    out = {"app_id": app_id, "fqdn": fqdn, "upstream_port": upstream_port, "aliases": served[1:],
           "redirects": [r for r in dict.fromkeys(redirects) if r not in served], "state": state}
    proxy_config = proxy_settings.normalise(proxy_config)
    return {**out, "proxy_config": proxy_config} if proxy_config else out


def names(vhost: dict) -> list[str]:
    return [vhost["fqdn"]] + vhost["aliases"] + vhost["redirects"]


def check_taken(specs: list[dict], existing: Iterable[dict]) -> None:
    """Conflict when a name of `specs` is served by another app (of `existing` or of `specs`)."""
    owner = {}
    for s in list(existing) + list(specs):
        for name in names(s):
            owner.setdefault(name, set()).add(s["app_id"])
    for s in specs:
        for name in names(s):
            others = sorted(owner[name] - {s["app_id"]})
            if others:
                raise Conflict(f"{name} is already served by app {others[0]}")


def read_spec(text: str | None) -> dict | None:
    """The spec recorded in a vhost file's first line, or None when it has none."""
    header = (text or "").split("\n", 1)[0]
    if not header.startswith(HEADER + " "):
        return None
    try:
        found = json.loads(header[len(HEADER) + 1:])
    except ValueError:
        return None
    return found if isinstance(found, dict) and _SPEC_KEYS <= set(found) <= _SPEC_KEYS | {"proxy_config"} else None


def read_all(sites_dir: str) -> dict[str, dict]:
    """{app id: spec} of the vhost files in `sites_dir`."""
    found = {}
    if not os.path.isdir(sites_dir):
        return found
    for entry in sorted(os.listdir(sites_dir)):
        try:
            with open(os.path.join(sites_dir, entry)) as f:
                first = f.readline()
        except (FileNotFoundError, IsADirectoryError):
            continue
        vhost = read_spec(first)
        if vhost is not None:
            found[vhost["app_id"]] = vhost
    return found


def render(vhost: dict, certificate: CertificateLookup, http_listens: list[str], https_listens: list[str],
           https_suffix: str) -> str:
    """The vhost file for a spec. `https_listens` are the listen directives of the TLS port (with
    "ssl http2"); `https_suffix` is ":<port>" when that port is not 443 (redirects keep it)."""
    vhost = spec(**vhost)      # re-checked: specs also come back from files on disk
    fqdn, served, redirects = vhost["fqdn"], [vhost["fqdn"]] + vhost["aliases"], vhost["redirects"]
    to_main = f"return 301 https://{fqdn}{https_suffix}$request_uri;"
    out = [f"{HEADER} {json.dumps(vhost, separators=(',', ':'))}", "# Written by Berth; edits are overwritten."]
    # Plain HTTP only answers ACME's HTTP-01 challenges and otherwise redirects: to the same name
    # over HTTPS, or straight to the main name.
    out += _server(http_listens, served, _http_body(f"return 301 https://$host{https_suffix}$request_uri;"))
    if redirects:
        out += _server(http_listens, redirects, _http_body(to_main))
    body = _app_body(vhost["state"], vhost["upstream_port"], fqdn)
    if vhost["state"] == "running":
        body = proxy_settings.server_lines(vhost.get("proxy_config")) + body
    for group, cert in _by_certificate(served, certificate):
        out += _server(https_listens, group, _tls(cert) + body)
    for group, cert in _by_certificate(redirects, certificate):
        out += _server(https_listens, group, _tls(cert) + [to_main])
    return "\n".join(out) + "\n"


def _by_certificate(hosts, certificate):
    """Group names by certificate: one TLS server block per certificate (nginx picks one by SNI)."""
    groups = {}
    for name in hosts:
        groups.setdefault(tuple(certificate(name)), []).append(name)
    return [(group, cert) for cert, group in groups.items()]


def _tls(cert):
    if len(cert) != 2:
        raise ValueError(f"a certificate lookup must give (cert path, key path), not {cert!r}")
    for path in cert:
        if not isinstance(path, str) or not os.path.isabs(path) or any(c in path for c in _UNSAFE_IN_PATH):
            raise ValueError(f"unusable certificate path {path!r}")
    cert_path, key_path = cert
    return [f"ssl_certificate {cert_path};", f"ssl_certificate_key {key_path};"]


def _http_body(redirect):
    return acme_challenges.location() + ["location / {", f"    {redirect}", "}"]


def _server(listens, hosts, body):
    return (["server {"] + ["    " + line for line in listens]
            + [f"    server_name {' '.join(hosts)};", "    " + blocklist.CHECK]
            + ["    " + line for line in body] + ["}"])


def _app_body(state, upstream_port, fqdn):
    if state != "running":
        return [
            "location / {",
            "    default_type text/html;",
            "    add_header Cache-Control no-store always;",
            "    add_header Retry-After 30 always;",
            f"    return 503 {pages.state_page(state, fqdn)};",
            "}",
        ]
    return [
        "location / {",
        f"    proxy_pass http://127.0.0.1:{upstream_port};",
        "    proxy_http_version 1.1;",
        "    proxy_set_header Host $host;",
        # nginx is the edge: what a client claims in X-Forwarded-For is not passed on as truth.
        "    proxy_set_header X-Forwarded-For $remote_addr;",
        "    proxy_set_header X-Real-IP $remote_addr;",
        "    proxy_set_header X-Forwarded-Proto https;",
        "    proxy_set_header X-Forwarded-Host $host;",
        "    proxy_set_header X-Forwarded-Port $server_port;",
        "    proxy_set_header X-Forwarded-Ssl on;",
        "    proxy_set_header Upgrade $http_upgrade;",
        "    proxy_set_header Connection $connection_upgrade;",
        "    proxy_connect_timeout 10s;",
        # Long-polling and websocket connections stay open as long as the app wants.
        "    proxy_send_timeout 3600s;",
        "    proxy_read_timeout 3600s;",
        "    proxy_next_upstream off;",
        "}",
        "error_page 502 504 = @berth_unreachable;",
        "location @berth_unreachable {",
        "    default_type text/html;",
        "    add_header Cache-Control no-store always;",
        f"    return 502 {pages.unreachable_page(fqdn)};",
        "}",
    ]
