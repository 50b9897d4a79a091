"""A real ACME CA for tests: Debian's `pebble` on free private ports, with `pebble-challtestsrv` as its
DNS server (every name resolves to 127.0.0.1 unless a test says otherwise through add_a()).

Pebble validates HTTP-01 challenges on `http_port` of whatever a name resolves to: tests give it
the HTTP port of Berth's nginx. Its HTTPS directory uses a certificate made here (ca_bundle is the
file Berth is told to trust through BERTH_ACME_CA_BUNDLE); the root that signs the certificates it
issues is fetched from its management interface (root_pem()).
"""
import datetime
import ipaddress
import json
import os
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from support.harness import free_port, require


def available() -> bool:
    return shutil.which("pebble") is not None and shutil.which("pebble-challtestsrv") is not None


def _pem(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_tls(folder: str) -> tuple[str, str, str]:
    """A private CA and a certificate for 127.0.0.1/localhost signed by it: (ca, cert, key) paths."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "berth test pebble CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = tuple(os.path.join(folder, n) for n in ("ca.pem", "cert.pem", "key.pem"))
    for path, data in zip(paths, (_pem(ca), _pem(leaf), key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())), strict=True):
        with open(path, "wb") as f:
            f.write(data)
    return paths


class Pebble:
    def __init__(self, folder: str, http_port: int, dns_server: str | None = None):
        """`dns_server` ("127.0.0.1:<port>", e.g. the BIND of support.bind) replaces the stub resolver:
        DNS-01 challenges are then looked up where Berth's DNS provider wrote them."""
        require("pebble and pebble-challtestsrv (Debian package pebble)", available())
        self.folder = folder
        self.http_port = http_port
        self.dns_server = dns_server
        self.port, self.management_port = free_port(), free_port()
        self.dns_port, self.dns_management_port = free_port(), free_port()
        self.ca_bundle, cert, key = make_tls(folder)
        self.config = os.path.join(folder, "pebble.json")
        with open(self.config, "w") as f:
            json.dump({"pebble": {
                "listenAddress": f"127.0.0.1:{self.port}",
                "managementListenAddress": f"127.0.0.1:{self.management_port}",
                "certificate": cert, "privateKey": key,
                "httpPort": http_port, "tlsPort": free_port(),
                "ocspResponderURL": "", "externalAccountBindingRequired": False}}, f)
        self.procs = []

    @property
    def directory(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    def _ssl(self):
        return ssl.create_default_context(cafile=self.ca_bundle)

    def start(self, timeout: float = 20) -> "Pebble":
        if self.dns_server is None:
            log = open(os.path.join(self.folder, "challtestsrv.log"), "wb")
            self.procs.append(subprocess.Popen(
                ["pebble-challtestsrv", "-dns01", f"127.0.0.1:{self.dns_port}", "-http01", "", "-https01", "",
                 "-tlsalpn01", "", "-management", f"127.0.0.1:{self.dns_management_port}",
                 "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""], stdout=log, stderr=subprocess.STDOUT))
        env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}
        log = open(os.path.join(self.folder, "pebble.log"), "wb")
        self.procs.append(subprocess.Popen(
            ["pebble", "-config", self.config, "-dnsserver", self.dns_server or f"127.0.0.1:{self.dns_port}"],
            env=env, stdout=log, stderr=subprocess.STDOUT))
        deadline = time.time() + timeout
        while True:
            try:
                urllib.request.urlopen(self.directory, context=self._ssl(), timeout=2).read()
                if self.dns_server is None:
                    urllib.request.urlopen(f"http://127.0.0.1:{self.dns_management_port}/", timeout=2)
                return self
            except urllib.error.HTTPError:
                return self     # challtestsrv answers 404 on /: it is up
            except OSError:
                for p in self.procs:
                    assert p.poll() is None, f"pebble stopped: {self.log()}"
                assert time.time() < deadline, f"pebble did not answer within {timeout}s: {self.log()}"
                time.sleep(0.1)

    def log(self) -> str:
        out = []
        for name in ("pebble.log", "challtestsrv.log"):
            if os.path.exists(os.path.join(self.folder, name)):
                with open(os.path.join(self.folder, name), errors="replace") as f:
                    out.append(f"--- {name}\n{f.read()[-4000:]}")
        return "\n".join(out)

    def root_pem(self) -> str:
        """The root that signs what pebble issues (new at every start of pebble)."""
        url = f"https://127.0.0.1:{self.management_port}/roots/0"
        return urllib.request.urlopen(url, context=self._ssl(), timeout=5).read().decode()

    def add_a(self, host: str, address: str) -> None:
        """Make `host` resolve to `address` for pebble's validation (e.g. where nothing listens)."""
        body = json.dumps({"host": host, "addresses": [address]}).encode()
        urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{self.dns_management_port}/add-a", data=body, method="POST"), timeout=5).read()

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []
