"""Berth's own nginx: the reverse proxy in front of every app.

Everything lives under <data dir>/nginx/ (layout.py), so it runs beside, and never touches, a
system nginx or /etc/nginx. Each app has one vhost file in sites/ (vhost_files.py); every change is
first applied to a copy of the configuration and checked with `nginx -t` (apply.py): a
configuration nginx rejects never replaces the working one. Changes take effect with a reload
(SIGHUP, nginx_process.py), and the functions return once the new workers serve.

The proxy knows no domains: whoever writes vhosts passes `certificate`, a function
`hostname -> (cert path, key path)` (domains.certificate_files in Berth), so this layer never
imports the layers above it.
"""
import logging
import os
from collections.abc import Callable, Iterable

from core import config
from core.errors import ApiError
from reverse_proxy import acme_challenges, apply, blocklist, certificate_files, main_config, nginx_process, vhost_files
from reverse_proxy.layout import Layout
from reverse_proxy.nginx_process import ProxyError, nginx_available  # noqa: F401 - public names
from reverse_proxy.vhost_files import STATES, CertificateLookup  # noqa: F401 - public names

# The vhosts a sync makes: a list, or a function returning one (called with the lock held).
SpecSource = Iterable[dict] | Callable[[], Iterable[dict]]

log = logging.getLogger("berth")


class Proxy:
    """One nginx instance rooted at <data_dir>/nginx, listening on the given ports.

    `listen` is the address to bind ("" = every interface, IPv4 and IPv6); tests use 127.0.0.1.
    """

    def __init__(self, data_dir: str, http_port: int, https_port: int, listen: str = ""):
        self.data_dir = os.path.abspath(data_dir)
        self.http_port = int(http_port)
        self.https_port = int(https_port)
        self.listen = listen
        self.layout = Layout.of(self.data_dir)
        self.root, self.conf, self.sites = self.layout.root, self.layout.conf, self.layout.sites

    # -- rendering ------------------------------------------------------------------------------

    def vhost_path(self, app_id: str) -> str:
        """The vhost file of `app_id`; ValueError for an id that could not name a file."""
        return os.path.join(self.sites, vhost_files.file_name(app_id))

    def spec(self, app_id: str, fqdn: str, upstream_port: int | None = None, aliases: Iterable[str] = (),
             redirects: Iterable[str] = (), state: str = "running", proxy_config: dict | None = None) -> dict:
        """Check and normalise what a vhost is made of (ValueError for anything malformed)."""
        return vhost_files.spec(app_id, fqdn, upstream_port, aliases, redirects, state, proxy_config)

    def render_main(self, sites_dir: str | None = None) -> str:
        """nginx.conf: global settings, the catch-all server, and an include of the vhosts."""
        return main_config.render(self.layout, self.http_port, self.https_port, self.listen,
                                  certificate_files.default_certificate(self.data_dir), sites_dir,
                                  acme_challenges.render_map(self.data_dir), blocklist.read(self.layout))

    def render_vhost(self, spec: dict, certificate: CertificateLookup) -> str:
        """The vhost file for a spec (see spec() and write_app_vhost)."""
        ipv6 = main_config.ipv6_available()
        suffix = "" if self.https_port == 443 else f":{self.https_port}"
        return vhost_files.render(spec, certificate,
                                  main_config.listens(self.listen, self.http_port, ipv6=ipv6),
                                  main_config.listens(self.listen, self.https_port, "ssl http2", ipv6), suffix)

    # -- the process ----------------------------------------------------------------------------

    def pid(self) -> int | None:
        """The pid of this proxy's nginx master, or None when it is not running."""
        return nginx_process.pid(self.layout)

    def is_running(self) -> bool:
        return self.pid() is not None

    def ensure_running(self, certificate: CertificateLookup) -> int:
        """Write nginx.conf for the current ports, rewrite the vhosts in place from what they record
        (ports and certificate files follow), and make sure nginx runs with it all. Returns the pid."""
        with apply.locked(self.layout):
            changes = {}
            for app_id, spec in self.vhosts().items():
                try:
                    changes[self.vhost_path(app_id)] = self.render_vhost(spec, certificate)
                except (ApiError, ValueError, OSError) as e:
                    # Keep serving the file as it is rather than leave every app unreachable.
                    log.warning("vhost of app %s left as it was: %s", app_id, getattr(e, "message", e))
            return self._commit(changes)

    def stop(self, timeout: float = 10) -> bool:
        """Stop nginx (fast shutdown: open connections are closed). True if it was running."""
        with apply.locked(self.layout):
            return nginx_process.stop(self.layout, timeout)

    def reload(self) -> bool:
        """Check the working configuration and reload it (e.g. after certificate files changed).
        Does nothing when nginx is not running."""
        with apply.locked(self.layout):
            pid = self.pid()
            if pid is None:
                return False
            nginx_process.test(self.layout, self.conf)
            nginx_process.reload(self.layout, pid)
            return True

    def refresh_certificates(self, certificate: CertificateLookup) -> int:
        """Rewrite every vhost with the certificates `certificate` now gives (after one was ordered,
        renewed or uploaded): checked with `nginx -t`, then reloaded. Returns nginx's pid.
        Reloaded even when no vhost text changed: a renewed certificate keeps its file names."""
        pid = self.ensure_running(certificate)
        self.reload()
        return pid

    # -- HTTP-01 answers --------------------------------------------------------------------------

    def publish_challenge(self, token: str, key_authorization: str) -> None:
        """Answer http://<any name>/.well-known/acme-challenge/<token> with the key authorization,
        once nginx serves it (starting nginx if needed)."""
        with apply.locked(self.layout):
            acme_challenges.put(self.data_dir, token, key_authorization)
            try:
                self._commit({})
            except Exception:
                acme_challenges.remove(self.data_dir, token)
                raise

    def withdraw_challenge(self, token: str) -> None:
        with apply.locked(self.layout):
            acme_challenges.remove(self.data_dir, token)
            if self.pid() is not None:
                self._commit({})

    # -- refused clients ------------------------------------------------------------------------

    def set_blocklist(self, networks: Iterable[str]) -> None:
        """Answer 403 to every client inside `networks` (addresses or CIDRs; ValueError for one
        that is neither), on every name: checked with `nginx -t`, then reloaded when nginx runs
        (otherwise nginx starts with it). A refused change leaves the previous list in force."""
        networks = blocklist.normalise(networks)
        with apply.locked(self.layout):
            previous = blocklist.read(self.layout)
            if previous == networks:
                return  # as it is (start-up passes the stored list every time)
            blocklist.store(self.layout, networks)
            if self.pid() is None:
                return
            try:
                self._commit({})
            except Exception:
                blocklist.store(self.layout, previous)
                raise

    def blocklist(self) -> list[str]:
        return blocklist.read(self.layout)

    # -- vhosts ---------------------------------------------------------------------------------

    def vhosts(self) -> dict[str, dict]:
        """{app id: spec} of the vhost files in place (see spec())."""
        return vhost_files.read_all(self.sites)

    def _commit(self, changes):
        """Apply vhost changes (checked by nginx first), then start or reload nginx. Caller holds the lock."""
        changed = apply.apply(self.layout, changes, self.render_main)
        pid = self.pid()
        if pid is None:
            return nginx_process.start(self.layout)
        if changed:
            nginx_process.reload(self.layout, pid)
        return pid

    def write_app_vhost(self, app_id: str, fqdn: str, upstream_port: int | None, aliases: Iterable[str] = (),
                        redirects: Iterable[str] = (), state: str = "running", *,
                        certificate: CertificateLookup, proxy_config: dict | None = None) -> str:
        """Serve app `app_id` at `fqdn` (and `aliases`), proxying to 127.0.0.1:`upstream_port`;
        `redirects` answer 301 to the main name. state: running | stopped | installing | error
        (the last three show a 503 page instead of the app; upstream_port may then be None).
        `certificate(hostname)` gives the (cert path, key path) for a name. Starts nginx if it is
        not running. Returns the vhost's path once nginx serves it. Raises Conflict when another
        app serves one of the names, ValueError for malformed arguments, ProxyError when nginx
        rejects the result (the working configuration then stays as it was). `proxy_config`: the
        app's robots.txt, CSP and HSTS preload (proxy_settings.py)."""
        spec = self.spec(app_id, fqdn, upstream_port, aliases, redirects, state, proxy_config)
        text = self.render_vhost(spec, certificate)
        with apply.locked(self.layout):
            vhost_files.check_taken([spec], [s for a, s in self.vhosts().items() if a != app_id])
            self._commit({self.vhost_path(app_id): text})
        return self.vhost_path(app_id)

    def sync_app_vhosts(self, specs: SpecSource, *, certificate: CertificateLookup) -> None:
        """Make the vhosts exactly `specs` (dicts of write_app_vhost's arguments): written, and
        every other app's vhost removed, in one check and one reload (start-up reconciliation).
        `specs` may be a function: it is then called with the lock held, so that a vhost another
        process writes meanwhile (an install, the dashboard moving) is either in what it returns
        or written after this sync, never removed as stale by a list read before it existed."""
        with apply.locked(self.layout):
            specs = [self.spec(**s) for s in (specs() if callable(specs) else specs)]
            vhost_files.check_taken(specs, [])
            texts = {self.vhost_path(s["app_id"]): self.render_vhost(s, certificate) for s in specs}
            stale = {self.vhost_path(a): None for a in self.vhosts() if self.vhost_path(a) not in texts}
            self._commit({**stale, **texts})

    def drain(self, timeout: float) -> bool:
        """Wait up to `timeout` s for the workers of earlier configurations to finish their requests
        and exit (after a switch of upstream: then nothing is sent to the old one any more)."""
        return nginx_process.drain(self.layout, timeout)

    def remove_app_vhost(self, app_id: str) -> bool:
        """Stop serving app `app_id` (its names then get the catch-all 404). True if it had a vhost."""
        path = self.vhost_path(app_id)
        with apply.locked(self.layout):
            if not os.path.exists(path):
                return False
            apply.apply(self.layout, {path: None}, self.render_main)
            pid = self.pid()
            if pid is not None:
                nginx_process.reload(self.layout, pid)
        return True


# ---- the proxy of this Berth (config.get()) ----------------------------------------------------

def proxy() -> Proxy:
    cfg = config.get()
    # "" (the default of BERTH_PROXY_LISTEN) binds every interface, as a public proxy must.
    return Proxy(cfg.data_dir, cfg.proxy_http_port, cfg.proxy_https_port, cfg.proxy_listen)


def reload() -> bool:
    return proxy().reload()


def is_running() -> bool:
    return proxy().is_running()


def write_app_vhost(app_id: str, fqdn: str, upstream_port: int | None, aliases: Iterable[str] = (),
                    redirects: Iterable[str] = (), state: str = "running", *,
                    certificate: CertificateLookup, proxy_config: dict | None = None) -> str:
    return proxy().write_app_vhost(app_id, fqdn, upstream_port, aliases, redirects, state,
                                   certificate=certificate, proxy_config=proxy_config)


def remove_app_vhost(app_id: str) -> bool:
    return proxy().remove_app_vhost(app_id)


def drain(timeout: float) -> bool:
    return proxy().drain(timeout)


def sync_app_vhosts(specs: SpecSource, *, certificate: CertificateLookup) -> None:
    return proxy().sync_app_vhosts(specs, certificate=certificate)


def publish_challenge(token: str, key_authorization: str) -> None:
    proxy().publish_challenge(token, key_authorization)


def withdraw_challenge(token: str) -> None:
    proxy().withdraw_challenge(token)


def refresh_certificates(certificate: CertificateLookup) -> int:
    return proxy().refresh_certificates(certificate)


def vhosts() -> dict[str, dict]:
    return proxy().vhosts()


def set_blocklist(networks: Iterable[str]) -> None:
    proxy().set_blocklist(networks)
