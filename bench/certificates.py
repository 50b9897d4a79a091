#!/usr/bin/env python3
"""Certificates: how long Berth takes to get 50 names served with CA-issued certificates, beside the
same 50 orders made directly with the `acme` library; and how long the renewal check takes over
1,000 certificates. Measured in one run:

    .venv/bin/python bench/certificates.py [--names 50] [--renewal-certs 1000] [--json out.json]

1. Two pebble CAs (Debian package pebble, tests/support/pebble.py: HTTP-01 validated on
   127.0.0.1, PEBBLE_VA_NOSLEEP) on free private ports: one validating on the HTTP port of Berth's
   managed nginx, one on the port of the direct run's own responder.
2. Berth: in this process, on a temp data dir and SQLite database, the domain bench.test
   (tlsConfig letsencrypt-staging, directory = the first pebble) and 50 vhosts on it written with
   reverse_proxy.sync_app_vhosts (not timed). These are vhosts, not installed apps: 50 containers
   would measure Docker, not certificates; an app install reaches the same code from here on.
   Timed: the renewcerts task body (domains.task_bodies.renew) for the 50 names, i.e. Berth's own
   ordering path (account key, HTTP-01 answers published through nginx with `nginx -t` + reload,
   order, files, serving them), then until a TLS handshake with each name's SNI gets a certificate
   issued by pebble.
3. Direct: the same 50 orders, one after another as Berth makes them, with the acme library alone
   (one account, P-256 keys, HTTP-01 answered by a minimal Python HTTP server from a dict).
   Prints both, the ratio Berth / direct (target: Berth adds under 20%).
4. Renewal check: --renewal-certs vhosts and ordered certificates (valid 60 days: nothing is due)
   on the same domain; times domains.task_bodies.renewal_check (the hourly schedule's action:
   what is due, back-off, expiry notifications). Target: under 1 s.

Everything it created (nginx, pebble, temp dirs) is removed at the end. Exit status 0 whatever the
figures; 2 means the benchmark itself could not run.
"""
import argparse
import datetime
import http.server
import json
import os
import shutil
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time

import common  # noqa: F401 - first: puts the repository and tests/ on sys.path

from support.harness import free_port

DOMAIN = "bench.test"
TARGET_RATIO = 1.20
TARGET_RENEWAL_SECS = 1.0


class QuietTask:
    """What a task body gets (tasks.child.TaskContext's log/progress), kept in memory."""

    def __init__(self):
        self.lines = []

    def log(self, line):
        self.lines.append(line)

    def progress(self, percent, message=""):
        self.lines.append(f"[{percent}%] {message}")


def issuer_of(https_port, host):
    from cryptography import x509
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", https_port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).issuer.rfc4514_string()


# ---- Berth ----------------------------------------------------------------------------------------

def setup_berth(tmp, pebble_dir, ca_bundle, http_port, https_port):
    os.environ.update({"BERTH_DATA_DIR": os.path.join(tmp, "data"), "BERTH_PROXY_HTTP_PORT": str(http_port),
                       "BERTH_PROXY_HTTPS_PORT": str(https_port), "BERTH_PROXY_LISTEN": "127.0.0.1",
                       "BERTH_ACME_DIRECTORY": pebble_dir, "BERTH_ACME_CA_BUNDLE": ca_bundle})
    os.makedirs(os.environ["BERTH_DATA_DIR"], mode=0o700)
    import domains
    import eventlog
    from models import migrations, open_database
    open_database("sqlite:///" + os.path.join(tmp, "data", "berth.db"))
    migrations.migrate()
    domains.add_domain(eventlog.SYSTEM, {"domain": DOMAIN, "provider": "noop", "config": {},
                                         "tlsConfig": {"provider": "letsencrypt-staging"}})


def write_vhosts(names, prefix):
    import domains
    import reverse_proxy
    specs = [{"app_id": f"{prefix}{i}", "fqdn": n, "upstream_port": None, "state": "stopped"}
             for i, n in enumerate(names)]
    current = [{"app_id": a, **{k: s[k] for k in ("fqdn", "upstream_port", "aliases", "redirects", "state")}}
               for a, s in reverse_proxy.vhosts().items()]
    reverse_proxy.sync_app_vhosts(current + specs, certificate=domains.certificate_files)


def berth_run(names, https_port):
    from domains import task_bodies
    task = QuietTask()
    start = time.perf_counter()
    result = task_bodies.renew(task, hostnames=names)
    ordered = time.perf_counter() - start
    assert sorted(result["issued"]) == sorted(names), task.lines[-5:]
    for n in names:
        issuer = issuer_of(https_port, n)
        assert "Pebble" in issuer, (n, issuer)
    return time.perf_counter() - start, ordered


# ---- direct, with the acme library alone ----------------------------------------------------------

class Responder:
    """HTTP-01 answers from a dict, on 127.0.0.1:port."""

    def __init__(self, port):
        answers = self.answers = {}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = answers.get(self.path.rsplit("/", 1)[-1], "").encode()
                self.send_response(200 if body else 404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def direct_run(names, directory, ca_bundle, responder):
    import josepy
    from acme import challenges, client, crypto_util, messages
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    def pem(key):
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    start = time.perf_counter()
    net = client.ClientNetwork(josepy.JWKRSA(key=rsa.generate_private_key(65537, 2048)),
                               user_agent="bench", verify_ssl=ca_bundle)
    acme = client.ClientV2(client.ClientV2.get_directory(directory, net), net)
    acme.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
    for name in names:
        csr = crypto_util.make_csr(pem(ec.generate_private_key(ec.SECP256R1())), [name])
        order = acme.new_order(csr)
        for authzr in order.authorizations:
            chall = next(c for c in authzr.body.challenges if isinstance(c.chall, challenges.HTTP01))
            response, validation = chall.response_and_validation(net.key)
            responder.answers[chall.chall.encode("token")] = validation
            acme.answer_challenge(chall, response)
        order = acme.poll_and_finalize(order, datetime.datetime.now() + datetime.timedelta(seconds=60))
        assert "BEGIN CERTIFICATE" in order.fullchain_pem
    return time.perf_counter() - start


# ---- the renewal check over many certificates ----------------------------------------------------

def renewal_check_run(count, runs=5):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from domains import task_bodies
    from models import Task
    from reverse_proxy import certificate_files as cert_files

    names = [f"r{i}.{DOMAIN}" for i in range(count)]
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    for n in names:
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, n)])
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=60))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(n)]), critical=False)
                .sign(key, hashes.SHA256()))
        cert_files.write_files(f"acme_{n}", cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem)
    write_vhosts(names, "renewal-")
    tasks_before = Task.select().count()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        task_bodies.renewal_check()
        times.append(time.perf_counter() - start)
    assert Task.select().count() == tasks_before, "the renewal check queued a task: something was due"
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--names", type=int, default=50)
    parser.add_argument("--renewal-certs", type=int, default=1000)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    from support import pebble as pebble_support
    if not pebble_support.available() or not shutil.which("nginx"):
        print("bench/certificates.py needs pebble and nginx (Debian packages pebble, nginx)", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="berth-bench-certs-")
    http_port, https_port, responder_port = free_port(), free_port(), free_port()
    for sub in ("pebble-berth", "pebble-direct"):
        os.makedirs(os.path.join(tmp, sub))
    berth_ca = pebble_support.Pebble(os.path.join(tmp, "pebble-berth"), http_port)
    direct_ca = pebble_support.Pebble(os.path.join(tmp, "pebble-direct"), responder_port)
    responder = None
    figures = {}
    try:
        berth_ca.start()
        direct_ca.start()
        responder = Responder(responder_port)
        setup_berth(tmp, berth_ca.directory, berth_ca.ca_bundle, http_port, https_port)
        names = [f"app{i}.{DOMAIN}" for i in range(args.names)]
        write_vhosts(names, "bench-")
        print(f"{args.names} names on {DOMAIN}, HTTP-01, pebble on 127.0.0.1 (orders one after another)")
        direct = direct_run(names, direct_ca.directory, direct_ca.ca_bundle, responder)
        berth, ordered = berth_run(names, https_port)
        ratio = berth / direct
        print(f"  direct (acme library, own responder): {direct:7.2f} s  ({1000 * direct / args.names:.0f} ms/name)")
        print(f"  Berth (renewcerts body, nginx):       {berth:7.2f} s  ({1000 * berth / args.names:.0f} ms/name; "
              f"orders and reload {ordered:.2f} s, checking 50 handshakes {berth - ordered:.2f} s)")
        print(f"  ratio Berth / direct: {ratio:.2f}  (target under {TARGET_RATIO:.2f}: "
              f"{'met' if ratio < TARGET_RATIO else 'NOT met'})")
        times = renewal_check_run(args.renewal_certs)
        best, median = min(times), statistics.median(times)
        print(f"renewal check over {args.renewal_certs} certificates: median {median * 1000:.0f} ms, "
              f"best {best * 1000:.0f} ms  (target under {TARGET_RENEWAL_SECS:.0f} s: "
              f"{'met' if median < TARGET_RENEWAL_SECS else 'NOT met'})")
        figures = {"names": args.names, "direct_secs": direct, "berth_secs": berth, "ratio": ratio,
                   "renewal_certs": args.renewal_certs, "renewal_check_secs": times}
    finally:
        try:
            import reverse_proxy
            if os.environ.get("BERTH_DATA_DIR"):
                reverse_proxy.proxy().stop()
        except Exception as e:  # noqa: BLE001 - clean-up goes on
            print(f"stopping nginx: {e}", file=sys.stderr)
        if responder:
            responder.stop()
        berth_ca.stop()
        direct_ca.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
