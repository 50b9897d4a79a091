"""Berth's managed nginx, for real: started in a temp data dir on free 127.0.0.1 ports, serving
vhosts in front of a local upstream, reached with curl --resolve and raw TLS sockets.

The reverse proxy has no HTTP route of its own (apps drive it), so these tests call the module
directly, with the domains of a real (SQLite) database providing the certificates (the lookup
Berth's apps pass, domains.certificate_files).
"""
import http.server
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import pytest

import certificates
import domains
import reverse_proxy
from core import config, processes
from core.errors import Conflict
from eventlog import Actor
from models import migrations, open_database
from reverse_proxy import nginx_process
from support.harness import free_port, require

APP = "app.example.test"
CERT = domains.certificate_files


class Upstream(http.server.BaseHTTPRequestHandler):
    """Answers with what it received; on `Upgrade: websocket` switches protocols and echoes bytes."""
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.headers.get("Upgrade", "").lower() == "websocket":
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.end_headers()
            self.wfile.flush()
            while True:
                data = self.connection.recv(1024)
                if not data:
                    break
                self.connection.sendall(b"echo:" + data)
            self.close_connection = True
            return
        body = json.dumps({"path": self.path, "headers": dict(self.headers)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def env():
    require("nginx (Debian package nginx)", reverse_proxy.nginx_available())
    require("curl (Debian package curl)", shutil.which("curl") is not None)
    data_dir = tempfile.mkdtemp(prefix="berth-proxy-")
    http_port, https_port = free_port(), free_port()
    previous = config._current
    cfg = config.load({"BERTH_DATA_DIR": data_dir, "BERTH_PROXY_HTTP_PORT": str(http_port),
                       "BERTH_PROXY_HTTPS_PORT": str(https_port)})
    config.use(cfg)
    open_database(cfg.database_url)
    migrations.migrate()
    domains.add_domain(Actor(), {"domain": "example.test", "provider": "noop", "config": {}})
    domains.add_domain(Actor(), {"domain": "other.test", "provider": "manual", "config": {}})

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()

    proxy = reverse_proxy.Proxy(data_dir, http_port, https_port, listen="127.0.0.1")
    proxy.ensure_running(CERT)
    yield proxy, server.server_address[1]
    proxy.stop()
    server.shutdown()
    config.use(previous)
    shutil.rmtree(data_dir, ignore_errors=True)


def curl(proxy, url_path, host=APP, https=True, *extra):
    port = proxy.https_port if https else proxy.http_port
    scheme = "https" if https else "http"
    out = subprocess.run(
        ["curl", "-sk", "--max-time", "10", "--resolve", f"{host}:{port}:127.0.0.1",
         "-o", "-", "-w", "\n%{http_code} %{redirect_url}", *extra, f"{scheme}://{host}:{port}{url_path}"],
        capture_output=True, text=True, timeout=20)
    body, _, tail = out.stdout.rpartition("\n")
    status, _, location = tail.partition(" ")
    return int(status), location, body


def tls_socket(proxy, host):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", proxy.https_port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname=host)


def served_certificate(proxy, host):
    with tls_socket(proxy, host) as s:
        return s.getpeercert(binary_form=True)


def der(pem):
    return ssl.PEM_cert_to_DER_cert(pem.split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n")


def test_serves_app_with_forwarded_headers_and_domain_certificate(env):
    proxy, upstream = env
    proxy.write_app_vhost("app1", APP, upstream, certificate=CERT)
    status, _, body = curl(proxy, "/hello?x=1")
    assert status == 200, body
    seen = json.loads(body)
    assert seen["path"] == "/hello?x=1"
    headers = {k.lower(): v for k, v in seen["headers"].items()}
    assert headers["host"] == APP
    assert headers["x-forwarded-proto"] == "https"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-host"] == APP
    assert headers["x-forwarded-port"] == str(proxy.https_port)
    # The certificate is the domain's fallback certificate (self-signed for example.test, *.example.test).
    assert served_certificate(proxy, APP) == der(domains.get_domain("example.test").fallback_cert)
    # A client-supplied X-Forwarded-For is not passed on as the truth.
    status, _, body = curl(proxy, "/", APP, True, "-H", "X-Forwarded-For: 6.6.6.6")
    assert json.loads(body)["headers"]["X-Forwarded-For"] == "127.0.0.1"


def test_http_redirects_to_https_keeping_the_port(env):
    proxy, upstream = env
    proxy.write_app_vhost("app1", APP, upstream, certificate=CERT)
    status, location, _ = curl(proxy, "/some/path?q=1", APP, False)
    assert status == 301
    assert location == f"https://{APP}:{proxy.https_port}/some/path?q=1"


def test_websocket_upgrade_passes_through(env):
    proxy, upstream = env
    proxy.write_app_vhost("app1", APP, upstream, certificate=CERT)
    with tls_socket(proxy, APP) as s:
        s.sendall((f"GET /socket HTTP/1.1\r\nHost: {APP}\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            assert chunk, head
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
        assert b"upgrade: websocket" in head.lower()
        s.sendall(b"ping")
        assert s.recv(1024) == b"echo:ping"


def test_aliases_are_served_and_redirect_domains_point_to_the_main_name(env):
    proxy, upstream = env
    proxy.write_app_vhost("app1", APP, upstream, aliases=["www.other.test"], redirects=["old.other.test"],
                          certificate=CERT)
    status, _, body = curl(proxy, "/a", "www.other.test")
    assert status == 200 and json.loads(body)["headers"]["Host"] == "www.other.test"
    # Each name gets the certificate of its own domain.
    assert served_certificate(proxy, "www.other.test") == der(domains.get_domain("other.test").fallback_cert)
    for https in (True, False):
        status, location, _ = curl(proxy, "/b?c=d", "old.other.test", https)
        assert (status, location) == (301, f"https://{APP}:{proxy.https_port}/b?c=d")
    status, location, _ = curl(proxy, "/", "www.other.test", False)
    assert (status, location) == (301, f"https://www.other.test:{proxy.https_port}/")


def test_stopped_and_installing_pages(env):
    proxy, upstream = env
    for state, words in (("stopped", "This app is stopped"), ("installing", "This app is being installed")):
        proxy.write_app_vhost("app1", APP, upstream, state=state, certificate=CERT)
        status, _, body = curl(proxy, "/anything")
        assert status == 503 and words in body and "<html" in body, body
        assert proxy.vhosts()["app1"]["state"] == state
    proxy.write_app_vhost("app1", APP, upstream, certificate=CERT)
    assert curl(proxy, "/")[0] == 200


def test_unreachable_upstream_gets_a_clear_page(env):
    proxy, _ = env
    proxy.write_app_vhost("app2", "down.example.test", free_port(), certificate=CERT)
    status, _, body = curl(proxy, "/", "down.example.test")
    assert status == 502 and "This app is not responding" in body
    proxy.remove_app_vhost("app2")


def test_rejected_configuration_never_replaces_the_working_one(env):
    proxy, upstream = env
    proxy.write_app_vhost("app1", APP, upstream, certificate=CERT)
    before = open(proxy.vhost_path("app1")).read()
    bad_dir = tempfile.mkdtemp(prefix="berth-badcert-")
    bad = (os.path.join(bad_dir, "bad.cert"), os.path.join(bad_dir, "bad.key"))
    for path in bad:
        with open(path, "w") as f:
            f.write("not a certificate\n")
    with pytest.raises(reverse_proxy.ProxyError) as failure:
        proxy.write_app_vhost("app1", APP, upstream, state="stopped", certificate=lambda host: bad)
    assert "nginx rejected the new configuration" in failure.value.message
    assert "bad.cert" in failure.value.message  # nginx's own words name the file
    assert open(proxy.vhost_path("app1")).read() == before
    assert not os.path.exists(os.path.join(proxy.root, "candidate"))
    assert curl(proxy, "/still")[0] == 200
    shutil.rmtree(bad_dir)


def test_bad_names_and_taken_names_are_refused(env):
    proxy, upstream = env
    proxy.write_app_vhost("app1", APP, upstream, certificate=CERT)
    with pytest.raises(Conflict):
        proxy.write_app_vhost("app3", "x.example.test", upstream, aliases=[APP], certificate=CERT)
    # Malformed arguments are programmer errors (the apps layer validates what users send).
    for bad in ("app.example.test; evil", "a b.example.test", "-x.example.test", "*.example.test"):
        with pytest.raises(ValueError):
            proxy.write_app_vhost("app3", bad, upstream, certificate=CERT)
    with pytest.raises(ValueError):
        proxy.write_app_vhost("../etc", "y.example.test", upstream, certificate=CERT)
    with pytest.raises(ValueError):
        proxy.write_app_vhost("app3", "y.example.test", 0, certificate=CERT)
    assert "app3" not in proxy.vhosts()


def test_certificate_change_of_the_domain_reloads_the_proxy(env):
    proxy, upstream = env
    proxy.write_app_vhost("app1", APP, upstream, certificate=CERT)
    cert, key = certificates.generate_self_signed("example.test")
    domains.update_domain(Actor(), "example.test", {"provider": "noop", "config": {},
                                                    "fallbackCertificate": {"cert": cert, "key": key}})
    assert served_certificate(proxy, APP) == der(cert)


def test_remove_vhost_and_unknown_hosts_get_404(env):
    proxy, upstream = env
    proxy.write_app_vhost("app1", APP, upstream, certificate=CERT)
    assert proxy.remove_app_vhost("app1") is True
    assert proxy.remove_app_vhost("app1") is False
    for https in (True, False):
        status, _, body = curl(proxy, "/", APP, https)
        assert status == 404 and json.loads(body)["status"] == "Not Found"
    assert curl(proxy, "/", "nobody.invalid")[0] == 404


def test_restart_and_stop(env):
    proxy, upstream = env
    pid = proxy.ensure_running(CERT)
    assert proxy.ensure_running(CERT) == pid  # already running: left alone
    proxy.write_app_vhost("app1", APP, upstream, certificate=CERT)
    assert proxy.stop() is True and not proxy.is_running()
    assert proxy.stop() is False
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", proxy.https_port), timeout=2).close()
    # Writing a vhost starts nginx again; the configuration on disk survived the stop.
    proxy.write_app_vhost("app1", APP, upstream, state="stopped", certificate=CERT)
    assert proxy.is_running() and proxy.pid() != pid
    assert curl(proxy, "/")[0] == 503


def test_sync_replaces_the_whole_set_of_vhosts(env):
    proxy, upstream = env
    proxy.write_app_vhost("app1", APP, upstream, certificate=CERT)
    proxy.write_app_vhost("app5", "five.example.test", upstream, certificate=CERT)
    proxy.sync_app_vhosts([
        {"app_id": "app1", "fqdn": APP, "upstream_port": upstream},
        {"app_id": "app6", "fqdn": "six.other.test", "state": "installing"},
    ], certificate=CERT)
    assert set(proxy.vhosts()) == {"app1", "app6"}
    assert curl(proxy, "/")[0] == 200
    assert curl(proxy, "/", "six.other.test")[0] == 503
    assert curl(proxy, "/", "five.example.test")[0] == 404
    with pytest.raises(Conflict):
        proxy.sync_app_vhosts([{"app_id": "a", "fqdn": APP, "upstream_port": upstream},
                               {"app_id": "b", "fqdn": "b.example.test", "upstream_port": upstream,
                                "redirects": [APP]}], certificate=CERT)
    assert set(proxy.vhosts()) == {"app1", "app6"}
    proxy.remove_app_vhost("app6")


def test_new_ports_carry_the_vhosts_along(env):
    proxy, upstream = env
    proxy.write_app_vhost("app1", APP, upstream, certificate=CERT)
    moved = reverse_proxy.Proxy(proxy.data_dir, free_port(), free_port(), listen="127.0.0.1")
    try:
        assert moved.ensure_running(CERT) == proxy.pid()  # same nginx, reloaded
        assert curl(moved, "/")[0] == 200
        status, location, _ = curl(moved, "/x", APP, False)
        assert (status, location) == (301, f"https://{APP}:{moved.https_port}/x")
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", proxy.https_port), timeout=2).close()
    finally:
        proxy.ensure_running(CERT)
    assert curl(proxy, "/")[0] == 200


def test_port_in_use_is_a_clear_error(env):
    data_dir = tempfile.mkdtemp(prefix="berth-proxy-busy-")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        other = reverse_proxy.Proxy(data_dir, busy.getsockname()[1], free_port(), listen="127.0.0.1")
        with pytest.raises(reverse_proxy.ProxyError) as failure:
            other.ensure_running(CERT)
    assert "nginx did not start" in failure.value.message
    assert "Address already in use" in failure.value.message
    assert not other.is_running()
    shutil.rmtree(data_dir, ignore_errors=True)


def test_workers_left_by_a_killed_master_are_cleared_on_start(env):
    proxy, upstream = env
    proxy.write_app_vhost("app1", APP, upstream, certificate=CERT)
    master = proxy.pid()
    workers = processes.children(master)
    assert workers
    os.kill(master, signal.SIGKILL)
    wait = time.monotonic() + 10
    while processes.alive(master) and time.monotonic() < wait:
        time.sleep(0.02)
    assert not proxy.is_running() and all(processes.alive(w) for w in workers)   # they hold the ports
    assert sorted(nginx_process.orphans(proxy.layout)) == sorted(workers)
    assert proxy.ensure_running(CERT) != master
    assert not any(processes.alive(w) for w in workers)
    assert curl(proxy, "/")[0] == 200
