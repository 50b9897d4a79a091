"""The tiny app image the tests install: `FROM scratch` + Debian's static busybox serving /www
with `busybox httpd`, and a throw-away local registry to pull images from.

    tag = images.httpd_image()                  # berth-test/httpd:<content hash>
    tag = images.httpd_image(write_data=True)   # also records each start in /app/data

Built with the Docker SDK from a temp context, once per content (the tag is a hash of everything
that goes in), so repeated sessions reuse it. What the container does, all overridable by env:
- serves /www on $PORT (8000): `/` (index.html, contains INDEX_MARKER), `/health` (created once
  the server is up, after $TEST_HEALTH_DELAY seconds if set), `/cgi-bin/env` (the environment,
  one VAR=value a line); logs every request to stderr (httpd -v) and "berth-test: ..." lines.
- with TEST_WRITE_DATA=1 (the write_data variant): appends the start time to /app/data/starts
  (one line per start, so restarts can be counted) and writes its env to /app/data/env.
- with TEST_EXIT_CODE=<n>: prints a line and exits with n at once (a crashing app).
- exits on SIGTERM at once (PID 1 gets no default signal handling), so `docker stop` is quick.
"""
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

from support.harness import end_process, free_port, machine_lock

BUSYBOX = "/bin/busybox"
REPOSITORY = "berth-test/httpd"
PORT = 8000
HEALTH_PATH = "/health"
INDEX_MARKER = "berth-test-app-index"
LABEL = "berth.test-image"

START_SH = r"""#!/bin/sh
trap 'kill $httpd 2>/dev/null; echo "berth-test: stopping"; exit 0' TERM INT
echo "berth-test: starting on port $PORT"
if [ -n "$TEST_EXIT_CODE" ]; then
  echo "berth-test: exiting with code $TEST_EXIT_CODE"
  exit "$TEST_EXIT_CODE"
fi
if [ "$TEST_WRITE_DATA" = 1 ]; then
  mkdir -p /app/data
  date -u +%Y-%m-%dT%H:%M:%SZ >> /app/data/starts
  env > /app/data/env
fi
rm -f /www/health
httpd -f -v -p "$PORT" -h /www &
httpd=$!
( sleep "${TEST_HEALTH_DELAY:-0}"; echo ok > /www/health; echo "berth-test: healthy" ) &
wait $httpd
"""

ENV_CGI = """#!/bin/sh
echo "Content-Type: text/plain"
echo
env
"""

INDEX_HTML = f"<!doctype html><title>berth test</title><p>{INDEX_MARKER}</p>\n"

DOCKERFILE = """FROM scratch
COPY rootfs/ /
ENV PATH=/bin PORT={port} TEST_WRITE_DATA={write_data}
EXPOSE {port}
LABEL {label}=true
ENTRYPOINT ["/bin/sh", "/start.sh"]
"""

def busybox_is_static():
    """True when /bin/busybox exists and is statically linked (Debian busybox-static)."""
    if not os.path.exists(BUSYBOX):
        return False
    result = subprocess.run(["ldd", BUSYBOX], capture_output=True, text=True)
    return "not a dynamic executable" in (result.stdout + result.stderr) or "statically linked" in result.stdout


def _applets():
    out = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout
    return sorted(a for a in out.split() if a and a != "busybox" and "/" not in a)


def _context(port, write_data, extra_files):
    """{path in the build context: bytes or ('symlink', target)} and its content hash."""
    with open(BUSYBOX, "rb") as f:
        busybox = f.read()
    files = {
        "Dockerfile": DOCKERFILE.format(port=port, write_data=int(write_data), label=LABEL).encode(),
        "rootfs/bin/busybox": busybox,
        "rootfs/start.sh": START_SH.encode(),
        "rootfs/www/index.html": INDEX_HTML.encode(),
        "rootfs/www/cgi-bin/env": ENV_CGI.encode(),
        "rootfs/app/data/.keep": b"",
        "rootfs/tmp/.keep": b"",
    }
    for applet in _applets():
        files[f"rootfs/bin/{applet}"] = ("symlink", "busybox")
    for path, data in (extra_files or {}).items():
        files["rootfs/" + path.lstrip("/")] = data
    digest = hashlib.sha256()
    for path in sorted(files):
        data = files[path]
        digest.update(path.encode() + b"\0" + (repr(data).encode() if isinstance(data, tuple) else data) + b"\0")
    return files, digest.hexdigest()[:16]


def httpd_image(client=None, port=PORT, write_data=False, extra_files=None, repository=REPOSITORY):
    """Tag of the test image for these options, building it unless the engine has it already."""
    import docker
    client = client or docker.from_env()
    files, digest = _context(port, write_data, extra_files)
    tag = f"{repository}:{digest}"
    try:
        client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    with machine_lock(tag):   # another worker may be building the same tag: build it once
        try:
            client.images.get(tag)
            return tag
        except docker.errors.ImageNotFound:
            pass
        with tempfile.TemporaryDirectory(prefix="berth-image-") as ctx:
            for path, data in files.items():
                full = os.path.join(ctx, path)
                os.makedirs(os.path.dirname(full), exist_ok=True)
                if isinstance(data, tuple):
                    os.symlink(data[1], full)
                    continue
                with open(full, "wb") as f:
                    f.write(data)
                os.chmod(full, 0o755 if path.startswith(("rootfs/bin/", "rootfs/www/cgi-bin/"))
                         or path.endswith(".sh") else 0o644)
            client.images.build(path=ctx, tag=tag, rm=True, forcerm=True, pull=False)
    return tag


def remove_test_images(client=None):
    """Remove every image these helpers built (label berth.test-image)."""
    import docker
    client = client or docker.from_env()
    for image in client.images.list(filters={"label": f"{LABEL}=true"}):
        try:
            client.images.remove(image.id, force=True)
        except docker.errors.APIError:
            pass


REGISTRY_CONFIG = """version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


class LocalRegistry:
    """A throw-away image registry (Debian docker-registry) on a free 127.0.0.1 port, so pulls are
    tested for real without the internet. Docker trusts plain HTTP on 127.0.0.0/8 by default.

        registry = LocalRegistry().start()
        ref = registry.push(client, local_tag, "berth-test/pull:1")   # 127.0.0.1:<port>/berth-test/pull:1
        registry.stop()
    """

    BINARY = "docker-registry"

    @classmethod
    def available(cls):
        return shutil.which(cls.BINARY) is not None

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="berth-registry-")
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.process = None

    def start(self, timeout=15):
        conf = os.path.join(self.dir, "config.yml")
        with open(conf, "w") as f:
            f.write(REGISTRY_CONFIG.format(root=os.path.join(self.dir, "data"), port=self.port))
        self.log = open(os.path.join(self.dir, "registry.log"), "wb")
        self.process = subprocess.Popen([shutil.which(self.BINARY), "serve", conf],
                                        stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"docker-registry did not start: {self._log_text()}")
            time.sleep(0.05)

    def _log_text(self):
        try:
            with open(os.path.join(self.dir, "registry.log"), errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def push(self, client, local_tag, name):
        """Push the local image `local_tag` as <registry>/<name>; returns that reference."""
        ref = f"{self.host}/{name}"
        repo, _, tag = ref.rpartition(":")
        client.images.get(local_tag).tag(repo, tag)
        try:
            for event in client.api.push(repo, tag=tag, stream=True, decode=True):
                if "error" in event:
                    raise RuntimeError(f"push of {ref} failed: {event['error']}")
        finally:
            client.images.remove(ref)   # only the registry's copy is wanted
        return ref

    def stop(self):
        end_process(self.process)
        if getattr(self, "log", None):
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


if __name__ == "__main__":
    print(httpd_image())
