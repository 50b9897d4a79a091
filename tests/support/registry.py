"""A private image registry for the tests: Debian's docker-registry with htpasswd basic auth on a
free port of 127.0.0.1 (the engine trusts plain HTTP on 127.0.0.0/8), in a temp dir, stopped after.

    registry = AuthRegistry().start()
    registry.username, registry.password
    ref = images.httpd_image(client, repository=f"{registry.host}/berth-test/private")
    registry.push(client, ref)       # now only in the registry
    registry.stop()

The htpasswd line is a bcrypt hash (the only kind docker-registry accepts), made by the Python
`bcrypt` module when it is installed, else by `htpasswd -B` (Debian package apache2-utils).
"""
import os
import shutil
import subprocess
import uuid

from support.images import REGISTRY_CONFIG, LocalRegistry

AUTH_CONFIG = """auth:
  htpasswd:
    realm: berth-test
    path: {path}
"""


def _bcrypt_line(username, password):
    try:
        import bcrypt
    except ImportError:
        out = subprocess.run(["htpasswd", "-nbB", username, password], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    return f"{username}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()}"


def available():
    return LocalRegistry.available() and (shutil.which("htpasswd") is not None or _has_bcrypt())


def _has_bcrypt():
    try:
        import bcrypt  # noqa: F401
    except ImportError:
        return False
    return True


class AuthRegistry(LocalRegistry):
    """LocalRegistry that asks for a username and password on every request."""

    def __init__(self, username="berth-puller", password=None):
        super().__init__()
        self.username = username
        self.password = password or f"Reg-{uuid.uuid4().hex[:12]}"

    def start(self, timeout=15):
        htpasswd = os.path.join(self.dir, "htpasswd")
        with open(htpasswd, "w") as f:
            f.write(_bcrypt_line(self.username, self.password) + "\n")
        conf = os.path.join(self.dir, "config.yml")
        with open(conf, "w") as f:
            f.write(REGISTRY_CONFIG.format(root=os.path.join(self.dir, "data"), port=self.port)
                    + AUTH_CONFIG.format(path=htpasswd))
        self.log = open(os.path.join(self.dir, "registry.log"), "wb")
        self.process = subprocess.Popen([shutil.which(self.BINARY), "serve", conf],
                                        stdout=self.log, stderr=subprocess.STDOUT)
        self._wait(timeout)
        return self

    def _wait(self, timeout):
        import time
        import urllib.error
        import urllib.request
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1)
                return
            except urllib.error.HTTPError as e:
                if e.code == 401:   # up, and asking for credentials as it should
                    return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"docker-registry did not start: {self._log_text()}")
            time.sleep(0.05)

    def push(self, client, ref):
        """Push the local image `ref` (<registry.host>/<name>:<tag>, e.g. built with
        images.httpd_image(repository=f"{registry.host}/...")) with the credentials, then drop
        the local copy so only the registry has it. No `tag` call: API tests check every 201."""
        repo, _, tag = ref.rpartition(":")
        auth = {"username": self.username, "password": self.password}
        try:
            for event in client.api.push(repo, tag=tag, stream=True, decode=True, auth_config=auth):
                if "error" in event:
                    raise RuntimeError(f"push of {ref} failed: {event['error']}")
        finally:
            client.images.remove(ref)
        return ref
