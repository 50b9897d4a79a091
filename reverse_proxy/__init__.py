"""Berth's own nginx: the reverse proxy in front of every app.

Everything lives under <data dir>/nginx/ (configuration, pid file, logs, temp dirs), so it runs
beside, and never touches, a system nginx or /etc/nginx. Each app has one vhost file in sites/;
every change is first applied to a copy of the configuration (candidate/) and checked with
`nginx -t`: a configuration nginx rejects never replaces the working one. Changes take effect
with a reload (SIGHUP), and the functions return once the new workers serve.

nginx daemonises on purpose: apps stay reachable while Berth itself restarts or is upgraded.
"""
import contextlib
import fcntl
import functools
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import certificates
from core import processes
from core import config
from core.errors import ApiError, BadRequest, Conflict, DependencyFailed

log = logging.getLogger("berth")

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
STATES = ("running", "stopped", "installing", "error")
_HOST = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_APP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_HEADER = "# berth-vhost"
RELOAD_TIMEOUT = 15
NOT_FOUND_BODY = '{"status":"Not Found","message":"No app is served at this address"}'


class ProxyError(DependencyFailed):
    """nginx refused a configuration or a command; the message carries nginx's own words."""


def nginx_available():
    return os.path.exists(NGINX) and os.access(NGINX, os.X_OK)


# ---- pages shown instead of an app -------------------------------------------------------------

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;background:#f4f5f7;color:#222;display:flex;
align-items:center;justify-content:center;height:100vh;margin:0}}main{{text-align:center}}
h1{{font-weight:500}}p{{color:#666}}</style></head>
<body><main><h1>{title}</h1><p>{text}</p><p><small>{host}</small></p></main></body></html>
"""
PAGES = {
    "stopped": ("This app is stopped",
                "An administrator has stopped this app. It is back as soon as it is started again."),
    "installing": ("This app is being installed",
                   "Installation is in progress; this page is replaced by the app when it is ready."),
    "error": ("This app is not available",
              "The app ran into a problem. An administrator can repair it from Berth."),
}
UNREACHABLE = ("This app is not responding", "The app is running but does not answer. Try again in a moment.")


def _nginx_string(text):
    """`text` as a single-quoted nginx string. nginx has no escape for `$` (it would start a
    variable), so texts with it are refused rather than silently mangled."""
    if "$" in text:
        raise ValueError("nginx strings cannot contain '$'")
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _page(title, text, host):
    return _nginx_string(_PAGE.format(title=title, text=text, host=host))


# ---- the proxy ---------------------------------------------------------------------------------

def _check_host(name, field):
    if not isinstance(name, str) or len(name) > 253 or not _HOST.match(name.lower()):
        raise BadRequest(f"{name!r} is not a valid hostname", field)
    return name.lower()


@functools.lru_cache(maxsize=1)
def _compiled_without():
    """Modules this nginx was built without (their temp path directives would be unknown)."""
    try:
        out = subprocess.run([NGINX, "-V"], capture_output=True, text=True, timeout=10).stderr
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    return frozenset(re.findall(r"--without-http_(\w+)_module", out))


def _ipv6_available():
    try:
        with open("/proc/net/if_inet6") as f:
            return bool(f.read().strip())
    except OSError:
        return False


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class Proxy:
    """One nginx instance rooted at <data_dir>/nginx, listening on the given ports.

    `listen` is the address to bind ("" = every interface, IPv4 and IPv6); tests use 127.0.0.1.
    """

    def __init__(self, data_dir, http_port, https_port, listen=""):
        self.data_dir = os.path.abspath(data_dir)
        self.http_port = int(http_port)
        self.https_port = int(https_port)
        self.listen = listen
        self.root = os.path.join(self.data_dir, "nginx")
        self.conf = os.path.join(self.root, "nginx.conf")
        self.sites = os.path.join(self.root, "sites")
        self.logs = os.path.join(self.root, "logs")
        self.pid_file = os.path.join(self.root, "nginx.pid")
        self.error_log = os.path.join(self.logs, "error.log")

    # -- files ----------------------------------------------------------------------------------

    def _dirs(self):
        for d in (self.root, self.sites, self.logs, os.path.join(self.root, "tmp")):
            os.makedirs(d, mode=0o700, exist_ok=True)

    @contextlib.contextmanager
    def _locked(self):
        """One change at a time across threads, tasks and gunicorn workers."""
        self._dirs()
        with open(os.path.join(self.root, ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def vhost_path(self, app_id):
        if not isinstance(app_id, str) or not _APP_ID.match(app_id):
            raise BadRequest(f"{app_id!r} is not a valid app id", "appId")
        return os.path.join(self.sites, f"app-{app_id}.conf")

    def _listens(self, port, extra=""):
        extra = f" {extra}" if extra else ""
        if self.listen:
            host = f"[{self.listen}]" if ":" in self.listen else self.listen
            return [f"listen {host}:{port}{extra};"]
        out = [f"listen {port}{extra};"]
        if _ipv6_available():
            out.append(f"listen [::]:{port}{extra};")
        return out

    def _https_suffix(self):
        return "" if self.https_port == 443 else f":{self.https_port}"

    def render_main(self, sites_dir=None):
        """nginx.conf: global settings, the catch-all server, and an include of the vhosts."""
        default_cert, default_key = self._default_certificate()
        tmp = os.path.join(self.root, "tmp")
        temp_paths = [f"client_body_temp_path {tmp}/client_body;", f"proxy_temp_path {tmp}/proxy;"]
        for module in ("fastcgi", "uwsgi", "scgi"):
            if module not in _compiled_without():
                temp_paths.append(f"{module}_temp_path {tmp}/{module};")
        listens = (self._listens(self.http_port, "default_server")
                   + self._listens(self.https_port, "ssl http2 default_server"))
        lines = [
            "# Written by Berth on every start and change; edits are overwritten.",
            f"pid {self.pid_file};",
            f"error_log {self.error_log} warn;",
            "worker_processes auto;",
            "events { worker_connections 4096; }",
            "http {",
            "    default_type application/octet-stream;",
            "    log_format berth '$remote_addr [$time_local] $host \"$request\" $status $body_bytes_sent '",
            "                     '$request_time \"$http_user_agent\"';",
            f"    access_log {self.logs}/access.log berth;",
            *("    " + p for p in temp_paths),
            "    server_tokens off;",
            "    sendfile on;",
            "    server_names_hash_bucket_size 128;",
            "    server_names_hash_max_size 4096;",
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
            "    server {",
            *("        " + listen for listen in listens),
            "        server_name _;",
            f"        ssl_certificate {default_cert};",
            f"        ssl_certificate_key {default_key};",
            "        default_type application/json;",
            f"        return 404 {_nginx_string(NOT_FOUND_BODY)};",
            "    }",
            f"    include {sites_dir or self.sites}/*.conf;",
            "}",
            "",
        ]
        return "\n".join(lines)

    def _default_certificate(self):
        """The certificate of the catch-all server: unknown names get a 404, not a TLS failure."""
        cert_path, key_path = certificates.paths("default", self.data_dir)
        if not (os.path.exists(cert_path) and os.path.exists(key_path)):
            cert, key = certificates.generate_self_signed("berth.invalid")
            certificates.write_files("default", cert, key, self.data_dir)
        return cert_path, key_path

    def spec(self, app_id, fqdn, upstream_port=None, aliases=(), redirects=(), state="running"):
        """Check and normalise what a vhost is made of; the dict is kept in the file's first line,
        so the proxy can rewrite every vhost by itself (new ports, certificate files restored)."""
        self.vhost_path(app_id)
        fqdn = _check_host(fqdn, "fqdn")
        if "*" in fqdn:
            raise BadRequest("must not be a wildcard", "fqdn")
        aliases = [_check_host(a, "aliases") for a in aliases or ()]
        redirects = [_check_host(r, "redirects") for r in redirects or ()]
        if state not in STATES:
            raise BadRequest(f"must be one of {', '.join(STATES)}", "state")
        if state == "running" or upstream_port is not None:
            if isinstance(upstream_port, bool) or not isinstance(upstream_port, int) \
                    or not 1 <= upstream_port <= 65535:
                raise BadRequest("must be a port number (1-65535)", "upstreamPort")
        served = list(dict.fromkeys([fqdn] + aliases))
        return {"app_id": app_id, "fqdn": fqdn, "upstream_port": upstream_port, "aliases": served[1:],
                "redirects": [r for r in dict.fromkeys(redirects) if r not in served], "state": state}

    @staticmethod
    def _names(spec):
        return [spec["fqdn"]] + spec["aliases"] + spec["redirects"]

    def render_vhost(self, spec, certificate=None):
        """The vhost file for a spec (see spec() and write_app_vhost)."""
        certificate = certificate or _domain_certificate
        fqdn, served, redirects = spec["fqdn"], [spec["fqdn"]] + spec["aliases"], spec["redirects"]
        suffix = self._https_suffix()
        out = [f"{_HEADER} {json.dumps(spec, separators=(',', ':'))}",
               "# Written by Berth; edits are overwritten."]
        # Plain HTTP only ever redirects: to the same name over HTTPS, or straight to the main name.
        out += self._server(self._listens(self.http_port), served,
                            [f"return 301 https://$host{suffix}$request_uri;"])
        if redirects:
            out += self._server(self._listens(self.http_port), redirects,
                                [f"return 301 https://{fqdn}{suffix}$request_uri;"])
        for names, cert in self._by_certificate(served, certificate):
            out += self._server(self._listens(self.https_port, "ssl http2"), names,
                                self._tls(cert) + self._app_body(spec["state"], spec["upstream_port"], fqdn))
        for names, cert in self._by_certificate(redirects, certificate):
            out += self._server(self._listens(self.https_port, "ssl http2"), names,
                                self._tls(cert) + [f"return 301 https://{fqdn}{suffix}$request_uri;"])
        return "\n".join(out) + "\n"

    @staticmethod
    def _by_certificate(names, certificate):
        """Group names by certificate: one TLS server block per certificate (nginx picks one by SNI)."""
        groups = {}
        for name in names:
            groups.setdefault(tuple(certificate(name)), []).append(name)
        return [(group, cert) for cert, group in groups.items()]

    @staticmethod
    def _tls(cert):
        cert_path, key_path = cert
        for path in cert:
            if not isinstance(path, str) or any(c in path for c in " ;{}'\"$\n"):
                raise ValueError(f"unusable certificate path {path!r}")
        return [f"ssl_certificate {cert_path};", f"ssl_certificate_key {key_path};"]

    @staticmethod
    def _server(listens, names, body):
        return (["server {"] + ["    " + line for line in listens]
                + [f"    server_name {' '.join(names)};"] + ["    " + line for line in body] + ["}"])

    @staticmethod
    def _app_body(state, upstream_port, fqdn):
        if state != "running":
            title, text = PAGES[state]
            return [
                "location / {",
                "    default_type text/html;",
                "    add_header Cache-Control no-store always;",
                "    add_header Retry-After 30 always;",
                f"    return 503 {_page(title, text, fqdn)};",
                "}",
            ]
        title, text = UNREACHABLE
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
            f"    return 502 {_page(title, text, fqdn)};",
            "}",
        ]

    # -- validation and applying ----------------------------------------------------------------

    def _test(self, conf):
        # -e stderr: the verdict comes back on stderr instead of being mixed into the live error log.
        argv = [NGINX, "-t", "-q", "-e", "stderr", "-p", self.root + "/", "-c", conf]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise ProxyError("nginx rejected the new configuration: "
                             + _nginx_message(result.stderr or result.stdout))

    def _apply(self, changes, main=None):
        """Check `changes` ({vhost path: text or None to delete}) and a new nginx.conf together on a
        copy of the configuration; only if nginx accepts the copy, put them in place (the caller
        reloads). Returns True when something changed."""
        changes = {p: t for p, t in changes.items() if _read(p) != t}
        if main is None:
            main = self.render_main()
        if not changes and _read(self.conf) == main:
            return False
        candidate = os.path.join(self.root, "candidate")
        shutil.rmtree(candidate, ignore_errors=True)
        shutil.copytree(self.sites, os.path.join(candidate, "sites"))
        try:
            for path, text in changes.items():
                target = os.path.join(candidate, "sites", os.path.basename(path))
                if text is None:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(target)
                else:
                    _write(target, text)
            candidate_conf = os.path.join(candidate, "nginx.conf")
            _write(candidate_conf, main.replace(f"include {self.sites}/*.conf;",
                                                f"include {candidate}/sites/*.conf;"))
            self._test(candidate_conf)
        finally:
            shutil.rmtree(candidate, ignore_errors=True)
        for path, text in changes.items():
            if text is None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            else:
                _write(path, text)
        _write(self.conf, main)
        return True

    # -- the process ----------------------------------------------------------------------------

    def pid(self):
        """The pid of this proxy's nginx master, or None when it is not running."""
        try:
            with open(self.pid_file) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        # A stale pid file may name a process that reused the number: it must be our master.
        cmd = _cmdline(pid)
        if not processes.alive(pid) or "nginx: master process" not in cmd or self.conf not in cmd:
            return None
        return pid

    def is_running(self):
        return self.pid() is not None

    def ensure_running(self):
        """Write nginx.conf for the current ports, rewrite the vhosts in place from what they record
        (ports and certificate files follow), and make sure nginx runs with it all. Returns the pid."""
        with self._locked():
            changes = {}
            for app_id, spec in self.vhosts().items():
                try:
                    changes[self.vhost_path(app_id)] = self.render_vhost(spec)
                except (ApiError, ValueError, OSError) as e:
                    # Keep serving the file as it is rather than leave every app unreachable.
                    log.warning("vhost of app %s left as it was: %s", app_id, getattr(e, "message", e))
            changed = self._apply(changes)
            pid = self.pid()
            if pid is not None:
                if changed:
                    self._reload(pid)
                return pid
            return self._start()

    def _orphans(self):
        """Workers left behind by a master that was killed outright: they still hold the ports.
        Ours are recognised by the error log they have open."""
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            state, ppid, _ = processes.stat(pid) or (None, None, None)
            if state in (None, "Z", "X") or not _cmdline(pid).startswith("nginx: worker"):
                continue
            if processes.alive(ppid) and _cmdline(ppid).startswith("nginx: master"):
                continue
            with contextlib.suppress(OSError):
                fds = os.listdir(f"/proc/{pid}/fd")
                if any(os.readlink(f"/proc/{pid}/fd/{fd}") == self.error_log for fd in fds):
                    found.append(pid)
        return found

    def _start(self):
        self._test(self.conf)
        for pid in self._orphans():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        start_log = os.path.join(self.logs, "start.log")
        with open(start_log, "w") as out:
            # nginx forks into the background and the command returns once the sockets are bound
            # (or with the reason they could not be). Its output goes to a file, not a pipe: the
            # daemon keeps the inherited descriptors until it has opened its own log.
            result = subprocess.run([NGINX, "-e", self.error_log, "-p", self.root + "/", "-c", self.conf],
                                    stdout=out, stderr=out, stdin=subprocess.DEVNULL, timeout=30)
        if result.returncode != 0:
            raise ProxyError("nginx did not start: " + _nginx_message(_read(start_log) or ""))
        deadline = time.monotonic() + RELOAD_TIMEOUT
        while time.monotonic() < deadline:
            pid = self.pid()
            if pid is not None and processes.children(pid):
                return pid
            time.sleep(0.02)
        raise ProxyError("nginx did not come up: " + self._error_tail())

    def stop(self, timeout=10):
        """Stop nginx (fast shutdown: open connections are closed). True if it was running."""
        with self._locked():
            pid = self.pid()
            if pid is None:
                return False
            workers = processes.children(pid)
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and processes.alive(pid):
                time.sleep(0.02)
            for p in [pid] + workers:  # still there after the timeout: no more asking
                if processes.alive(p):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(p, signal.SIGKILL)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.pid_file)
            return True

    def reload(self):
        """Check the working configuration and reload it (e.g. after certificate files changed).
        Does nothing when nginx is not running."""
        with self._locked():
            pid = self.pid()
            if pid is None:
                return False
            self._test(self.conf)
            self._reload(pid)
            return True

    def reopen_logs(self):
        """Have nginx reopen its log files (after they were rotated)."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGUSR1)

    def _reload(self, pid):
        """SIGHUP the master and wait until workers with the new configuration serve: the old
        workers have been told to finish ("shutting down"), which is when they stop accepting."""
        old = set(processes.children(pid))
        os.kill(pid, signal.SIGHUP)
        deadline = time.monotonic() + RELOAD_TIMEOUT
        while time.monotonic() < deadline:
            kids = set(processes.children(pid))
            if kids - old and all("shutting down" in _cmdline(p) for p in kids & old):
                return
            time.sleep(0.01)
        raise ProxyError("nginx did not apply the new configuration: " + self._error_tail())

    def _error_tail(self, lines=5):
        text = _read(self.error_log) or ""
        return _nginx_message("\n".join(text.strip().splitlines()[-lines:])) or "no message in the error log"

    # -- vhosts ---------------------------------------------------------------------------------

    def vhosts(self):
        """{app id: spec} of the vhost files in place (see spec())."""
        found = {}
        if not os.path.isdir(self.sites):
            return found
        for entry in sorted(os.listdir(self.sites)):
            header = (_read(os.path.join(self.sites, entry)) or "").split("\n", 1)[0]
            if header.startswith(_HEADER + " "):
                try:
                    spec = json.loads(header[len(_HEADER) + 1:])
                except ValueError:
                    continue
                found[spec["app_id"]] = spec
        return found

    def _check_taken(self, specs, existing):
        owner = {}
        for spec in list(existing) + list(specs):
            for name in self._names(spec):
                owner.setdefault(name, set()).add(spec["app_id"])
        for spec in specs:
            for name in self._names(spec):
                others = sorted(owner[name] - {spec["app_id"]})
                if others:
                    raise Conflict(f"{name} is already served by app {others[0]}")

    def _commit(self, changes):
        """Apply vhost changes (checked by nginx first), then start or reload nginx."""
        changed = self._apply(changes)
        pid = self.pid()
        if pid is None:
            return self._start()
        if changed:
            self._reload(pid)
        return pid

    def write_app_vhost(self, app_id, fqdn, upstream_port, aliases=(), redirects=(), state="running",
                        certificate=None):
        """Serve app `app_id` at `fqdn` (and `aliases`), proxying to 127.0.0.1:`upstream_port`;
        `redirects` answer 301 to the main name. state: running | stopped | installing | error
        (the last three show a 503 page instead of the app; upstream_port may then be None).
        `certificate(hostname)` gives the (cert path, key path) for a name; by default the
        fallback certificate of its domain. Starts nginx if it is not running. Returns the
        vhost's path once nginx serves it. Raises Conflict when another app serves one of the
        names, BadRequest for malformed arguments, ProxyError when nginx rejects the result
        (the working configuration then stays as it was)."""
        spec = self.spec(app_id, fqdn, upstream_port, aliases, redirects, state)
        text = self.render_vhost(spec, certificate)
        with self._locked():
            self._check_taken([spec], [s for a, s in self.vhosts().items() if a != app_id])
            self._commit({self.vhost_path(app_id): text})
        return self.vhost_path(app_id)

    def sync_app_vhosts(self, specs, certificate=None):
        """Make the vhosts exactly `specs` (dicts of write_app_vhost's arguments): written, and
        every other app's vhost removed, in one check and one reload (start-up reconciliation)."""
        specs = [self.spec(**s) for s in specs]
        self._check_taken(specs, [])
        texts = {self.vhost_path(s["app_id"]): self.render_vhost(s, certificate) for s in specs}
        with self._locked():
            stale = {self.vhost_path(a): None for a in self.vhosts() if self.vhost_path(a) not in texts}
            self._commit({**stale, **texts})

    def remove_app_vhost(self, app_id):
        """Stop serving app `app_id` (its names then get the catch-all 404). True if it had a vhost."""
        path = self.vhost_path(app_id)
        with self._locked():
            if not os.path.exists(path):
                return False
            self._apply({path: None})
            pid = self.pid()
            if pid is not None:
                self._reload(pid)
        return True


def _nginx_message(text):
    """nginx's diagnostics without the noise of its prefixes and the final test verdict."""
    lines = []
    for line in (text or "").strip().splitlines():
        line = re.sub(r"^(nginx: )?(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d )?", "", line.strip())
        if line and "test failed" not in line:
            lines.append(line)
    return "; ".join(lines)


_read = certificates.read_text


def _write(path, text):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _domain_certificate(hostname):
    import domains  # late: domains reloads the proxy when a certificate changes
    return domains.certificate_files(hostname)


# ---- the proxy of this Berth (config.get()) ----------------------------------------------------

def proxy():
    cfg = config.get()
    # BERTH_PROXY_LISTEN is not in Config yet; "" binds every interface as a public proxy must.
    listen = getattr(cfg, "proxy_listen", "")
    return Proxy(cfg.data_dir, cfg.proxy_http_port, cfg.proxy_https_port, listen)


def ensure_running():
    return proxy().ensure_running()


def stop():
    return proxy().stop()


def reload():
    return proxy().reload()


def is_running():
    return proxy().is_running()


def write_app_vhost(app_id, fqdn, upstream_port, aliases=(), redirects=(), state="running", certificate=None):
    return proxy().write_app_vhost(app_id, fqdn, upstream_port, aliases, redirects, state, certificate)


def remove_app_vhost(app_id):
    return proxy().remove_app_vhost(app_id)


def sync_app_vhosts(specs, certificate=None):
    return proxy().sync_app_vhosts(specs, certificate)


def vhosts():
    return proxy().vhosts()
