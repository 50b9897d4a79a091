"""The app test environment shared by the app and backup API tests: a Berth server with the test
image, the test catalog and Berth's nginx on private ports (AppsBerth), and helpers."""
import contextlib
import os
import shutil
import subprocess
import time
import uuid

from support import images
from support.harness import Api, BerthServer, free_port, proxy_env, remove_app_containers, stop_proxy

DOMAIN = "example.test"
CATALOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "catalog.json")
CATALOG_ID = "io.berth.test.catalog"
MIB = 1024 * 1024


def _docker():
    try:
        import docker
        client = docker.from_env()
        client.ping()
        return client
    except Exception:  # noqa: BLE001 - any failure means "no engine here"
        return None


def _closed_port():
    """A port nothing listens on (from this worker's slice: see harness.free_port)."""
    return free_port()


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class AppsBerth:
    """A Berth server with a managed nginx on free ports, an owner, the domain example.test, the
    test catalog, and helpers to drive apps and look at them from outside."""

    def __init__(self, image, catalog, docker_client, tmp, database_url=None):
        self.image = image
        self.database_url = database_url
        self.docker = docker_client
        # Polling task and app states is most of what these tests send, on one token: not the
        # per-token rate limit's test, so it is off (BERTH_RATE_LIMIT=0).
        self.env = proxy_env({"BERTH_APP_CATALOG": catalog, "BERTH_RATE_LIMIT": "0"})
        self.http_port = int(self.env["BERTH_PROXY_HTTP_PORT"])
        self.https_port = int(self.env["BERTH_PROXY_HTTPS_PORT"])
        self.data_dir = tmp
        self.server = None
        self.api = None
        self.app_ids = set()

    # -- the server -----------------------------------------------------------------------------

    def start(self):
        self.server = BerthServer(database_url=self.database_url, data_dir=self.data_dir,
                                  env=self.env).start()
        token = self.api.token if self.api else None
        if token is None:
            anon = Api(self.server.api)
            r = anon.post("/cloudron/activate", json={"username": "owner", "password": "Owner-pass-1",
                                                      "email": "owner@example.com"})
            assert r.status_code == 201, r.text
            token = r.json()["token"]
        self.api = Api(self.server.api, token)
        if self.api.get(f"/domains/{DOMAIN}").status_code == 404:
            r = self.api.post("/domains", json={"domain": DOMAIN, "provider": "noop", "config": {}})
            assert r.status_code == 201, r.text
        return self

    def close(self):
        try:
            if self.server is not None:
                self.server.stop()
        finally:
            stop_proxy(self.data_dir)
            remove_app_containers(self.app_ids)
            shutil.rmtree(self.data_dir, ignore_errors=True)

    # -- requests -------------------------------------------------------------------------------

    def manifest(self, **changes):
        manifest = {"manifestVersion": 2, "id": "io.berth.test.httpd", "version": "1.0.0",
                    "title": "Berth test app", "dockerImage": self.image, "httpPort": images.PORT,
                    "healthCheckPath": images.HEALTH_PATH}
        manifest.update(changes)
        return manifest

    def request_install(self, location, manifest=None, **body):
        body = {"location": location, "domain": DOMAIN, "accessRestriction": None, **body}
        if "appStoreId" not in body:
            body["manifest"] = manifest or self.manifest()
        r = self.api.post("/apps/install", json=body)
        if r.status_code == 202:
            self.app_ids.add(r.json()["id"])
        return r

    def install(self, location, manifest=None, **body):
        """Install and wait for the task; returns the app (asserting it is installed)."""
        r = self.request_install(location, manifest, **body)
        assert r.status_code == 202, r.text
        task = self.wait_task(r.json()["taskId"])
        assert task["success"], task
        app = self.app(r.json()["id"])
        assert app["installationState"] == "installed", app
        return app

    def run(self, r):
        """Wait for the task of a 202 answer; returns the finished task."""
        assert r.status_code == 202, r.text
        assert set(r.json()) == {"taskId"}, r.json()
        return self.wait_task(r.json()["taskId"])

    def wait_task(self, task_id, timeout=90):
        deadline = time.time() + timeout
        while True:
            r = self.api.get(f"/tasks/{task_id}")
            assert r.status_code == 200, r.text
            task = r.json()
            if not task["active"] and not task["pending"]:
                return task
            assert time.time() < deadline, f"task {task_id} still running after {timeout}s: {task}"
            time.sleep(0.1)

    def task_log(self, task_id):
        r = self.api.get(f"/tasks/{task_id}/logs", params={"lines": -1, "format": "plain"})
        assert r.status_code == 200, r.text
        return r.text

    def app(self, app_id):
        r = self.api.get(f"/apps/{app_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def wait_app(self, app_id, what, predicate, timeout=30):
        deadline = time.time() + timeout
        while True:
            app = self.app(app_id)
            if predicate(app):
                return app
            assert time.time() < deadline, f"app never {what} within {timeout}s: {app}"
            time.sleep(0.2)

    # -- looking from outside -------------------------------------------------------------------

    def curl(self, host, path="/", https=True):
        """(status, headers, body) of GET <host><path> through Berth's nginx (curl --resolve)."""
        port = self.https_port if https else self.http_port
        url = f"{'https' if https else 'http'}://{host}:{port}{path}"
        out = subprocess.run(["curl", "-sS", "-k", "-i", "--max-time", "10", "--resolve",
                              f"{host}:{port}:127.0.0.1", url], capture_output=True)
        assert out.returncode == 0, f"curl {url}: {out.stderr.decode(errors='replace')}"
        # Bytes, not text=True: universal newlines would turn the header block's CRLFs into LFs.
        head, _, body = out.stdout.decode(errors="replace").partition("\r\n\r\n")
        lines = head.split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        return int(lines[0].split()[1]), headers, body

    def wait_page(self, host, what, predicate, timeout=10):
        """Poll the page at `host` until predicate(status, body); the proxy is updated right
        after the database, so a state seen through the API may be ahead of nginx by a reload."""
        deadline = time.time() + timeout
        while True:
            status, _, body = self.curl(host)
            if predicate(status, body):
                return status, body
            assert time.time() < deadline, f"{host} never {what} within {timeout}s: {status} {body}"
            time.sleep(0.2)

    def container_env(self, fqdn):
        """The container's environment, as its /cgi-bin/env answers through the proxy."""
        status, _, body = self.curl(fqdn, "/cgi-bin/env")
        assert status == 200, body
        return dict(line.split("=", 1) for line in body.splitlines() if "=" in line)

    def container(self, app_id):
        """`docker inspect` of the app's container (None when there is none)."""
        found = self.docker.containers.list(all=True, filters={"label": f"berth.app-id={app_id}"})
        assert len(found) <= 1, found
        return found[0].attrs if found else None

    def app_dir(self, app_id):
        return os.path.join(self.data_dir, "apps", app_id)

    def starts(self, app_id):
        """How often the app's container started (the image appends a line to /app/data/starts)."""
        with open(os.path.join(self.app_dir(app_id), "data", "starts")) as f:
            return len(f.read().splitlines())

    def vhost(self, app_id):
        return os.path.join(self.data_dir, "nginx", "sites", f"app-{app_id}.conf")

    def origin(self, fqdn):
        return f"https://{fqdn}" + ("" if self.https_port == 443 else f":{self.https_port}")


def _berth(parts, tmp_path_factory, database_url=None):
    return AppsBerth(parts["image"], parts["catalog"], parts["docker"],
                     str(tmp_path_factory.mktemp("berth-apps")), database_url)


@contextlib.contextmanager
def apps_berth(parts, tmp_path_factory, env=None, database_url=None):
    """A started AppsBerth (`env` adds server variables), closed afterwards: a test module's server."""
    berth = _berth(parts, tmp_path_factory, database_url)
    berth.env.update(env or {})
    try:
        yield berth.start()
    finally:
        berth.close()


@contextlib.contextmanager
def berth_with_zone(parts, bind, tmp_path_factory, env=None, prepare=None):
    """An AppsBerth whose domain is the zone of `bind` (a real BIND), with records written through
    rfc2136. `env` adds server variables; `prepare(api)` runs before the domain is added."""
    with apps_berth(parts, tmp_path_factory, env) as berth:
        if prepare is not None:
            prepare(berth.api)
        r = berth.api.post("/domains", json={"domain": bind.zone, "provider": "rfc2136",
                                             "config": bind.provider_config()})
        assert r.status_code == 201, r.text
        yield berth
