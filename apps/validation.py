"""What an app may be given: a free place (location on a domain, aliases, redirects), free ports,
environment, memory and access rules.

Each check returns the value to store, normalised (names in lower case without a trailing dot,
so comparisons and the unique index see one spelling), or raises BadRequest naming the API field
or Conflict naming who holds what was asked for. An app's own domain that Berth does not have is a
404 ("No such domain"), as Cloudron answers; an unknown alias or redirect domain is a 400 naming
the entry, being one field of the body.
"""
import socket

import domains
from apps import manifests
from core.errors import BadRequest, Conflict, NotFound
from models.apps import App

RESERVED_PORTS = {22, 25, 53, 80, 443, 587, 993, 3000, 4190}
MIN_MEMORY = 6 * 1024 * 1024


# ---- names ------------------------------------------------------------------------------------

def _fqdn_or_plain(location, domain):
    """The hostname even when the stored domain row is gone: one damaged app row must not make
    every other app's check fail."""
    try:
        return domains.fqdn(location, domain)
    except NotFound:
        domain = domains.normalise(domain)
        return f"{location}.{domain}" if location else domain


def hostnames_of(app: App) -> set[str]:
    """Every name the app is served at or redirected from."""
    names = {_fqdn_or_plain(app.location, app.domain)}
    for extra in (app.alternate_domains or []) + (app.redirect_domains or []):
        if isinstance(extra, dict) and isinstance(extra.get("domain"), str):
            names.add(_fqdn_or_plain(str(extra.get("subdomain") or "").lower(), extra["domain"]))
    return names


def check_location_and_domain(location: str | None, domain: str, exclude_app: str | None = None,
                              field: str = "location", domain_field: str = "domain") -> tuple[str, str]:
    """(location, domain) normalised, for a place no other app (but `exclude_app`) serves or
    redirects: `location` is a DNS label or "", `domain` one of this Berth's domains."""
    location = domains.check_label(location, field)
    if not isinstance(domain, str):
        raise BadRequest("must be a string", domain_field)
    dom = domains.find(domain)
    if dom is None:
        raise NotFound(f"No such domain '{domain}' (add it under /domains first)")
    wanted = domains.fqdn(location, dom)
    for other in App.select():
        if other.id != exclude_app and wanted in hostnames_of(other):
            raise Conflict(f"{wanted} is already in use by app {other.id}")
    return location, dom.domain


def check_location(location: str | None, domain: str, exclude_app: str | None = None,
                   field: str = "location") -> str:
    """The normalised location (see check_location_and_domain, which also gives the domain)."""
    return check_location_and_domain(location, domain, exclude_app, field)[0]


def check_extra_domains(entries: list | None, app_id: str | None,
                        field: str = "alternateDomains") -> list[dict]:
    """Alias (served too) or redirect (301 to the app) names: each a DNS label on one of our
    domains (like `location`: the name reaches nginx), and free."""
    clean = []
    for i, entry in enumerate(entries or []):
        if not isinstance(entry, dict) or not entry.get("domain"):
            raise BadRequest("needs {domain, subdomain}", f"{field}.{i}")
        try:
            sub, domain = check_location_and_domain(entry.get("subdomain", ""), entry["domain"], exclude_app=app_id,
                                                    field=f"{field}.{i}.subdomain", domain_field=f"{field}.{i}.domain")
        except NotFound:
            raise BadRequest(f"no such domain '{entry['domain']}' (add it under /domains first)",
                             f"{field}.{i}.domain") from None
        clean.append({"domain": domain, "subdomain": sub})
    return clean


# ---- ports ------------------------------------------------------------------------------------

def _port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def check_port_bindings(manifest: dict, bindings: dict | None, exclude_app: str | None = None) -> dict[str, int]:
    """{ENV_NAME: host port} the app may bind: ports the manifest declares, 1024-65535 and not
    reserved, bound by no other app and free on this host. Ports `exclude_app` holds already are
    not probed on the host, as its own container has them bound (configure, restore of that app)."""
    declared = manifests.declared_ports(manifest)
    clean = {}
    taken = {}
    own = set()
    for other in App.select(App.id, App.port_bindings):
        for port in (other.port_bindings or {}).values():
            if other.id == exclude_app:
                own.add(port)
            else:
                taken[port] = other.id
    for env_name, port in (bindings or {}).items():
        field = f"portBindings.{env_name}"
        if env_name not in declared:
            raise BadRequest("is not a port the manifest declares (tcpPorts/udpPorts)", field)
        if isinstance(port, bool) or not isinstance(port, int) or not 1024 <= port <= 65535 \
                or port in RESERVED_PORTS:
            raise BadRequest("must be a free port between 1024 and 65535", field)
        if port in taken:
            raise Conflict(f"Port {port} is already in use by app {taken[port]}")
        if port not in own and not _port_free(port):
            raise Conflict(f"Port {port} is already in use on this server")
        clean[env_name] = port
    return clean


# ---- the rest ---------------------------------------------------------------------------------

def check_env(env: dict | None) -> dict[str, str]:
    for name, value in (env or {}).items():
        if not manifests.ENV_NAME.match(name) and not name.replace("_", "").isalnum():
            raise BadRequest("must be an environment variable name", f"env.{name}")
        if not isinstance(value, str):
            raise BadRequest("must be a string", f"env.{name}")
    return dict(env or {})


def check_memory(limit: int | None, field: str = "memoryLimit") -> int:
    if limit in (None, 0):
        return 0
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < MIN_MEMORY:
        raise BadRequest("must be 0 (default) or at least 6 MiB (6291456 bytes)", field)
    return limit


def check_cpu_shares(shares: object, field: str = "cpuShares") -> int:
    """Docker's relative CPU weight, in Cloudron's range 2..1024 (512: the default)."""
    if isinstance(shares, bool) or not isinstance(shares, int) or not 2 <= shares <= 1024:
        raise BadRequest("must be an integer from 2 to 1024", field)
    return shares


def check_access(restriction: dict | None) -> dict | None:
    """None (everyone) or {users: [...], groups: [...]} of id strings (see apps.may_access)."""
    if restriction is None:
        return None
    if not isinstance(restriction, dict):
        raise BadRequest("must be null or {users: [], groups: []}", "accessRestriction")
    clean = {}
    for key in ("users", "groups"):
        ids = restriction.get(key) or []
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise BadRequest("must be a list of id strings", f"accessRestriction.{key}")
        clean[key] = list(ids)
    return clean

