"""A real authoritative DNS server for the tests: BIND's `named` (Debian package bind9) in the
foreground, on a free port of 127.0.0.1, with a config and one writable zone in a temp dir and a
TSIG key allowed to update that zone (`update-policy { grant <key> zonesub ANY; }`).

    server = BindServer("dns.test").start()
    server.provider_config()     # a domain config for provider rfc2136 pointing at it
    server.query("app", "A")     # what named serves now (plain query, no cache in between)
    server.stop()
"""
import base64
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time

import dns.exception
import dns.message
import dns.query
import dns.rdatatype

from support.harness import free_port, require

NAMED = shutil.which("named") or "/usr/sbin/named"
KEY_NAME = "berth-key"


class BindServer:
    def __init__(self, zone="dns.test", key_name=KEY_NAME):
        self.zone, self.key_name = zone, key_name
        self.secret = base64.b64encode(os.urandom(32)).decode()
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="berth-bind-")
        self.proc = None

    @staticmethod
    def available():
        return os.access(NAMED, os.X_OK)

    def _write_config(self):
        zone_file = os.path.join(self.dir, f"{self.zone}.zone")
        with open(zone_file, "w") as f:
            f.write(f"$TTL 60\n@ IN SOA ns1.{self.zone}. admin.{self.zone}. 1 60 60 600 60\n"
                    f"@ IN NS ns1.{self.zone}.\nns1 IN A 127.0.0.1\n")
        conf = os.path.join(self.dir, "named.conf")
        with open(conf, "w") as f:
            f.write(f"""
key "{self.key_name}" {{ algorithm hmac-sha256; secret "{self.secret}"; }};
options {{
    directory "{self.dir}";
    pid-file "{self.dir}/named.pid";
    listen-on port {self.port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    allow-query {{ any; }};
    session-keyfile "{self.dir}/session.key";
    managed-keys-directory "{self.dir}";
}};
controls {{ }};
zone "{self.zone}" {{
    type primary;
    file "{zone_file}";
    journal "{zone_file}.jnl";
    update-policy {{ grant {self.key_name} zonesub ANY; }};
}};
""")
        return conf

    def start(self, timeout=20):
        conf = self._write_config()
        self.log = open(os.path.join(self.dir, "named.log"), "w")
        # -g: foreground, log to stderr; no -u: the zone's journal is written by whoever runs the tests
        self.proc = subprocess.Popen([NAMED, "-g", "-c", conf, "-p", str(self.port), "-4"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"named exited ({self.proc.returncode}):\n{self.read_log()}")
            try:
                if self.query("", "SOA"):
                    return self
            except (OSError, dns.exception.DNSException):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"named did not answer on port {self.port}:\n{self.read_log()}")

    def read_log(self):
        try:
            with open(os.path.join(self.dir, "named.log")) as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def provider_config(self, **override):
        return {"server": "127.0.0.1", "port": self.port, "keyName": self.key_name,
                "algorithm": "hmac-sha256", "secret": self.secret, **override}

    def provider(self):
        """Berth's rfc2136 provider for this zone, as the server uses it (to look or plant records)."""
        import dns_providers
        return dns_providers.create("rfc2136", self.zone, self.provider_config())

    def query(self, name, rtype):
        """The values named serves for name (relative to the zone) and rtype, sorted."""
        fqdn = f"{name}.{self.zone}." if name not in ("", "@") else f"{self.zone}."
        response = dns.query.tcp(dns.message.make_query(fqdn, rtype), "127.0.0.1", port=self.port, timeout=5)
        wanted = dns.rdatatype.from_text(rtype)
        return sorted(r.to_text() for rrset in response.answer if rrset.rdtype == wanted for r in rrset)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def running_bind(zone):
    """A BindServer for `zone`, started and always stopped (fails clearly when named is missing)."""
    require("BIND (Debian package bind9: named)", BindServer.available())
    server = BindServer(zone).start()
    try:
        yield server
    finally:
        server.stop()
