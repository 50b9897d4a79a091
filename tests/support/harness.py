"""Real processes for the tests and benchmarks: a Berth server under gunicorn, and a throw-away
PostgreSQL cluster. Everything listens on free ports of 127.0.0.1 and lives in temp dirs."""
import contextlib
import fcntl
import glob
import itertools
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import requests

from core import processes

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.dirname(sys.executable)


def require(what, found):
    """Fail (BERTH_REQUIRE_ALL=1, as in CI) or skip when a needed component is missing."""
    import pytest
    if found:
        return
    message = f"needs {what}, which was not found on this machine"
    if os.environ.get("BERTH_REQUIRE_ALL") == "1":
        pytest.fail(message + " (BERTH_REQUIRE_ALL=1)", pytrace=False)
    pytest.skip(message)


# Ports handed to the servers and services the tests start. bind(0)-and-release can give two
# pytest-xdist workers (or a worker and a client's outgoing connection) the same port between the
# release and the server's own bind, so each worker draws from its own slice below the kernel's
# ephemeral range (32768+), in order from a random start: never the same port twice in one
# process, never a port of another worker, rarely one of another pytest session.
PORT_BASE, PORT_SLICE = 12000, 2500


def _worker_index():
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(worker[2:]) % 8 if worker[2:].isdigit() else 0


_port_slice = range(PORT_BASE + _worker_index() * PORT_SLICE, PORT_BASE + (_worker_index() + 1) * PORT_SLICE)
_next_port = itertools.count(random.randrange(PORT_SLICE))


def end_process(proc, timeout: float = 10) -> None:
    """End a helper server a test started (git daemon, registry, moto, pebble): SIGTERM, then
    SIGKILL if it is still there after `timeout` seconds. Nothing to do if it already ended."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def free_port():
    """A port of this worker's slice that nothing on 127.0.0.1 holds now (TCP and UDP)."""
    for _ in range(PORT_SLICE):
        port = _port_slice[next(_next_port) % PORT_SLICE]
        try:
            with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                tcp.bind(("127.0.0.1", port))
                udp.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    raise RuntimeError(f"no free port in {_port_slice}")


class BerthServer:
    """One Berth server process (gunicorn + uvicorn worker) with its own data dir."""

    def __init__(self, database_url=None, data_dir=None, workers=1, env=None):
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="berth-test-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api = self.url + "/api/v1"
        # Every test server gets its own nginx ports on 127.0.0.1 (never 80/443), whether or
        # not it installs apps; `env` may override them.
        self.env = dict(os.environ, BERTH_DATA_DIR=self.data_dir, BERTH_HOST="127.0.0.1",
                        BERTH_PORT=str(self.port), BERTH_WORKERS=str(workers), **proxy_env(env))
        if database_url:
            self.env["BERTH_DATABASE_URL"] = database_url
        self.proc = None
        self.log_path = os.path.join(self.data_dir, "server.log")

    def start(self, timeout=30):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "cli", "serve"], cwd=ROOT, env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"berth exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if requests.get(self.api + "/cloudron/status", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"berth did not answer within {timeout}s:\n{self.log()}")

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()[-5000:]

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def kill(self):
        self.stop(signal.SIGKILL)

    def cleanup(self):
        self.stop()
        stop_proxy(self.data_dir)  # Berth's nginx outlives Berth by design
        shutil.rmtree(self.data_dir, ignore_errors=True)


@contextlib.contextmanager
def tmpfs(options):
    """A small tmpfs mounted by the test (as root; `options` e.g. "size=2m" or "size=1m,ro"), always
    unmounted afterwards: a full or read-only disk for storage tests."""
    where = tempfile.mkdtemp(prefix="berth-tmpfs-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", where], capture_output=True, text=True)
    if r.returncode != 0:
        os.rmdir(where)
        require(f"mounting a tmpfs (root; mount said: {r.stderr.strip()})", False)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", where], check=False)
        os.rmdir(where)


@contextlib.contextmanager
def machine_lock(name):
    """Held by one process of the machine at a time (pytest-xdist workers, concurrent sessions):
    for work on shared engine state, e.g. building an image by tag that the others then reuse."""
    folder = os.path.join(tempfile.gettempdir(), "berth-test-locks")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name.replace("/", "_").replace(":", "_") + ".lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def pg_bin(name):
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else None


class PostgresCluster:
    """A private PostgreSQL cluster (initdb in a temp dir, trust auth on 127.0.0.1)."""

    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="berth-pg-")
        self._count = 0

    @staticmethod
    def available():
        return pg_bin("initdb") is not None

    def _as_postgres(self, *argv):
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            argv = ("runuser", "-u", "postgres", "--") + argv
        return subprocess.run(argv, check=True, capture_output=True, text=True)

    def start(self):
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        data = os.path.join(self.dir, "data")
        self._as_postgres(pg_bin("initdb"), "-D", data, "--auth=trust", "-U", "postgres",
                          "--no-sync", "-E", "UTF8")
        self._as_postgres(pg_bin("pg_ctl"), "-D", data, "-w", "-l", os.path.join(self.dir, "log"),
                          "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                                "-c fsync=off -c synchronous_commit=off", "start")
        return self

    def new_database(self):
        self._count += 1
        name = f"berth_{self._count}"
        self._as_postgres("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                          "-c", f"CREATE DATABASE {name}")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self):
        try:
            self._as_postgres(pg_bin("pg_ctl"), "-D", os.path.join(self.dir, "data"), "-m", "immediate", "stop")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


class Api:
    """A tiny client: `api.get("/users")` with the token attached; returns requests.Response."""

    def __init__(self, base, token=None):
        self.base = base
        self.token = token
        self.session = requests.Session()

    def with_token(self, token):
        return Api(self.base, token)

    def request(self, method, path, **kw):
        headers = kw.pop("headers", {})
        if self.token and "Authorization" not in headers:
            headers["Authorization"] = f"Bearer {self.token}"
        return self.session.request(method, self.base + path, headers=headers, timeout=30, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, json=None, **kw):
        return self.request("POST", path, json=json, **kw)

    def put(self, path, json=None, **kw):
        return self.request("PUT", path, json=json, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


# ---- apps: servers with a managed nginx, and cleaning up after them ---------------------------

def proxy_env(env=None):
    """Environment for a server whose managed nginx listens on free 127.0.0.1 ports; the ports
    are in BERTH_PROXY_HTTP_PORT / BERTH_PROXY_HTTPS_PORT of the result."""
    return {"BERTH_PROXY_HTTP_PORT": str(free_port()), "BERTH_PROXY_HTTPS_PORT": str(free_port()),
            "BERTH_PROXY_LISTEN": "127.0.0.1", **(env or {})}


def stop_proxy(data_dir, timeout=10):
    """Stop the nginx a server started under <data_dir>/nginx (it outlives Berth by design).
    Only a process that is that nginx's master (its command line names our nginx.conf) is
    signalled: SIGQUIT (graceful), then SIGKILL for the master and its workers after `timeout`."""
    root = os.path.join(data_dir, "nginx")
    conf = os.path.join(root, "nginx.conf")
    try:
        with open(os.path.join(root, "nginx.pid")) as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, ValueError):
        return False
    if "nginx: master process" not in cmdline or conf not in cmdline:
        return False
    workers = processes.children(pid)
    os.kill(pid, signal.SIGQUIT)
    deadline = time.time() + timeout
    while time.time() < deadline and _running(pid):
        time.sleep(0.05)
    for p in [pid] + workers:
        if _running(p):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return True


_running = processes.alive


def remove_app_containers(app_ids):
    """Remove the containers of these apps (label berth.app-id), whatever state they are in."""
    import docker
    client = docker.from_env()
    removed = 0
    for app_id in set(app_ids):
        for container in client.containers.list(all=True, filters={"label": f"berth.app-id={app_id}"}):
            try:
                container.remove(force=True, v=True)
                removed += 1
            except docker.errors.NotFound:
                pass
    return removed


def activate(server, username="owner", password="Owner-pass-1", email="owner@example.com"):
    """Activate a fresh server and return its owner's Api."""
    api = Api(server.api)
    r = api.post("/cloudron/activate", json={"username": username, "password": password, "email": email})
    assert r.status_code == 201, r.text
    return api.with_token(r.json()["token"])


_counter = itertools.count()


def unique(prefix="u"):
    """A name no other test of this run uses."""
    return f"{prefix}{next(_counter)}x{uuid.uuid4().hex[:6]}"
