"""A real LDAP directory for the tests: OpenLDAP's `slapd` (Debian packages slapd, ldap-utils) in
the foreground on a free port of 127.0.0.1, with a static slapd.conf, an mdb database and its
entries loaded by `slapadd` in a temp dir, stopped and removed after.

    directory = Slapd(users=[...], groups={...}).start()
    directory.url                    # ldap://127.0.0.1:<port>
    directory.reader_dn, directory.reader_password   # a search-only service account
    directory.admin()                # an ldap3 connection as the root DN, to change entries in a test
    directory.stop()

Users are inetOrgPerson entries uid=<name>,ou=people,<base> with a plain-text userPassword (slapd
compares it on a simple bind); groups are groupOfNames cn=<name>,ou=groups,<base>.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import ldap3

from support.harness import free_port

SLAPD = shutil.which("slapd") or "/usr/sbin/slapd"
SLAPADD = shutil.which("slapadd") or "/usr/sbin/slapadd"
SCHEMA_DIR = "/etc/ldap/schema"
MODULE_DIR = "/usr/lib/ldap"
BASE = "dc=example,dc=test"


def available():
    return os.access(SLAPD, os.X_OK) and os.access(SLAPADD, os.X_OK) and os.path.isdir(SCHEMA_DIR)


def _entry(dn, **attrs):
    lines = [f"dn: {dn}"]
    for name, values in attrs.items():
        for value in values if isinstance(values, list) else [values]:
            lines.append(f"{name}: {value}")
    return "\n".join(lines) + "\n"


class Slapd:
    def __init__(self, users=(), groups=None, base=BASE):
        """users: dicts uid, password, and optionally mail, cn, displayName; groups: name -> [uid]."""
        self.base = base
        self.users = list(users)
        self.groups = dict(groups or {})
        self.port = free_port()
        self.url = f"ldap://127.0.0.1:{self.port}"
        self.dir = tempfile.mkdtemp(prefix="berth-slapd-")
        self.root_dn, self.root_password = f"cn=admin,{base}", "root-secret-1"
        self.reader_dn, self.reader_password = f"cn=reader,ou=services,{base}", "reader-secret-1"
        self.proc = None

    def user_dn(self, uid):
        return f"uid={uid},ou=people,{self.base}"

    def _config(self):
        schemas = "".join(f"include {SCHEMA_DIR}/{name}.schema\n"
                          for name in ("core", "cosine", "inetorgperson", "nis"))
        return f"""{schemas}
modulepath {MODULE_DIR}
moduleload back_mdb
pidfile {self.dir}/slapd.pid
argsfile {self.dir}/slapd.args

database mdb
maxsize 16777216
suffix "{self.base}"
rootdn "{self.root_dn}"
rootpw {self.root_password}
directory {self.dir}/data
access to attrs=userPassword by self write by anonymous auth by * none
access to * by users read by * none
"""

    def _ldif(self):
        dc = self.base.split(",")[0].split("=")[1]
        parts = [_entry(self.base, objectClass=["dcObject", "organization"], dc=dc, o=dc)]
        for ou in ("people", "groups", "services"):
            parts.append(_entry(f"ou={ou},{self.base}", objectClass="organizationalUnit", ou=ou))
        parts.append(_entry(self.reader_dn, objectClass=["organizationalRole", "simpleSecurityObject"],
                            cn="reader", userPassword=self.reader_password))
        for user in self.users:
            attrs = {"objectClass": "inetOrgPerson", "uid": user["uid"], "cn": user.get("cn", user["uid"]),
                     "sn": user.get("sn", user["uid"]), "userPassword": user["password"]}
            for optional in ("mail", "displayName"):
                if user.get(optional):
                    attrs[optional] = user[optional]
            parts.append(_entry(self.user_dn(user["uid"]), **attrs))
        for name, members in self.groups.items():
            parts.append(_entry(f"cn={name},ou=groups,{self.base}", objectClass="groupOfNames", cn=name,
                                member=[self.user_dn(m) for m in members] or [self.reader_dn]))
        return "\n".join(parts)

    def start(self, timeout=20):
        os.makedirs(os.path.join(self.dir, "data"))
        conf = os.path.join(self.dir, "slapd.conf")
        with open(conf, "w") as f:
            f.write(self._config())
        ldif = os.path.join(self.dir, "entries.ldif")
        with open(ldif, "w") as f:
            f.write(self._ldif())
        loaded = subprocess.run([SLAPADD, "-f", conf, "-l", ldif], capture_output=True, text=True)
        if loaded.returncode != 0:
            raise RuntimeError(f"slapadd failed: {loaded.stderr}")
        self.log = open(os.path.join(self.dir, "slapd.log"), "w")
        # -d 0: stay in the foreground (no daemon to chase), logging nothing but failures.
        self.proc = subprocess.Popen([SLAPD, "-f", conf, "-h", f"{self.url}/", "-d", "0"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"slapd exited ({self.proc.returncode}): {self.read_log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"slapd did not listen on port {self.port}: {self.read_log()}")

    def read_log(self):
        try:
            with open(os.path.join(self.dir, "slapd.log")) as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def admin(self):
        """An ldap3 connection bound as the root DN."""
        return ldap3.Connection(ldap3.Server(self.url), self.root_dn, self.root_password, auto_bind=True)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
