"""Apps for real: a Berth server (SQLite) installs the FROM-scratch busybox test image
(tests/images.py) on the real Docker engine behind its own nginx, and everything is checked
through the API, the engine (docker inspect) and the proxy (curl --resolve on 127.0.0.1).

Each test installs its own apps at its own locations on one shared server; the test that
SIGKILLs a server gets a server of its own, and one round of install/uninstall runs on
PostgreSQL. Teardown stops the nginx each server started (it outlives Berth by design) and
removes every container of the apps the tests created. The app catalog is tests/support/catalog.json,
its image placeholder replaced by the test image's tag in a temp copy.

Waits have timeouts only to fail instead of hanging; how fast installs are is bench/apps.py's job.
"""
import base64
import json
import os
import shutil
import socket
import subprocess
import time
import uuid

import pytest
import requests

from support import images
from support.harness import Api, BerthServer, proxy_env, remove_app_containers, require, stop_proxy

DOMAIN = "example.test"
CATALOG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support", "catalog.json")
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
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
        body = {"location": location, "domain": DOMAIN, **body}
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


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """What every app test needs from the machine: the engine, nginx, curl, the test image and
    the test catalog (tests/support/catalog.json with the image placeholder replaced by its tag)."""
    require("a Docker engine (Debian package docker.io, dockerd running)", _docker() is not None)
    require("nginx (Debian package nginx)", shutil.which("nginx") is not None)
    require("curl (Debian package curl)", shutil.which("curl") is not None)
    require("a static busybox (Debian package busybox-static)", images.busybox_is_static())
    client = _docker()
    image = images.httpd_image(client, write_data=True)
    with open(CATALOG) as f:
        text = f.read()
    assert "@TEST_IMAGE@" in text
    catalog = tmp_path_factory.mktemp("catalog") / "catalog.json"
    catalog.write_text(text.replace("@TEST_IMAGE@", image))
    return {"image": image, "catalog": str(catalog), "docker": client}


def _berth(parts, tmp_path_factory, database_url=None):
    return AppsBerth(parts["image"], parts["catalog"], parts["docker"],
                     str(tmp_path_factory.mktemp("berth-apps")), database_url)


@pytest.fixture(scope="module")
def apps(parts, tmp_path_factory):
    env = _berth(parts, tmp_path_factory)
    try:
        yield env.start()
    finally:
        env.close()


# ---- install ----------------------------------------------------------------------------------

def test_install_serves_the_app_over_https(apps):
    location = unique("web")
    fqdn = f"{location}.{DOMAIN}"
    r = apps.request_install(location, env={"GREETING": "hello berth"}, label="Web", tags=["t1"])
    assert r.status_code == 202, r.text
    assert set(r.json()) == {"id", "taskId"}
    app_id, task_id = r.json()["id"], r.json()["taskId"]
    early = apps.app(app_id)
    assert early["installationState"] in ("pending_install", "installed"), early

    task = apps.wait_task(task_id)
    assert task["success"], task
    assert task["percent"] == 100
    app = apps.app(app_id)
    assert app["installationState"] == "installed"
    assert app["runState"] == "running"
    assert app["health"] == "healthy"
    assert app["fqdn"] == fqdn
    assert app["taskId"] is None and app["error"] is None
    assert app["env"] == {"GREETING": "hello berth"}
    assert app["label"] == "Web" and app["tags"] == ["t1"]
    assert app["manifest"]["dockerImage"] == apps.image
    assert "Using local image" in apps.task_log(task_id)
    assert app_id in [a["id"] for a in apps.api.get("/apps").json()["apps"]]

    # The page, over HTTPS at its own name; plain HTTP redirects there.
    status, _, body = apps.curl(fqdn)
    assert status == 200, body
    assert images.INDEX_MARKER in body
    status, headers, _ = apps.curl(fqdn, "/some/path?x=1", https=False)
    assert status == 301
    assert headers["location"] == f"{apps.origin(fqdn)}/some/path?x=1"

    env = apps.container_env(fqdn)
    assert env["GREETING"] == "hello berth"
    assert env["CLOUDRON"] == "1"
    assert env["CLOUDRON_APP_ID"] == app_id
    assert env["CLOUDRON_APP_DOMAIN"] == fqdn
    assert env["CLOUDRON_APP_ORIGIN"] == apps.origin(fqdn)
    assert env["CLOUDRON_API_ORIGIN"] == apps.server.url

    info = apps.container(app_id)
    assert info["State"]["Running"]
    assert info["Config"]["Labels"]["berth.managed"] == "true"
    assert info["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    mounts = {m["Destination"]: m["Source"] for m in info["Mounts"]}
    assert mounts["/app/data"] == os.path.join(apps.app_dir(app_id), "data")
    assert apps.starts(app_id) == 1   # the container wrote into its data folder
    # The app port is published on 127.0.0.1 only.
    bindings = info["HostConfig"]["PortBindings"][f"{images.PORT}/tcp"]
    assert [b["HostIp"] for b in bindings] == ["127.0.0.1"]
    assert os.path.exists(apps.vhost(app_id))

    # Settings only Berth keeps are answered at once, without a task.
    r = apps.api.post(f"/apps/{app_id}/configure/label", json={"label": None})   # x-nullable
    assert (r.status_code, r.json()) == (200, {}), r.text
    r = apps.api.post(f"/apps/{app_id}/configure/tags", json={"tags": [" a ", "b"]})
    assert (r.status_code, r.json()) == (200, {}), r.text
    app = apps.app(app_id)
    assert (app["label"], app["tags"], app["installationState"]) == ("", ["a", "b"], "installed")


def test_install_from_the_catalog(apps):
    app = apps.install(unique("cat"), appStoreId=CATALOG_ID)
    assert app["appStoreId"] == f"{CATALOG_ID}@1.1.0"       # the highest version
    assert app["manifest"]["version"] == "1.1.0"
    assert app["manifest"]["dockerImage"] == apps.image
    assert app["health"] == "healthy"
    # The manifest's memoryLimit applies when the install does not set one.
    assert apps.container(app["id"])["HostConfig"]["Memory"] == 64 * MIB
    status, _, body = apps.curl(app["fqdn"])
    assert status == 200 and images.INDEX_MARKER in body

    r = apps.request_install(unique("cat"), appStoreId="io.berth.test.nothing")
    assert r.status_code == 404, r.text
    r = apps.request_install(unique("cat"), appStoreId=f"{CATALOG_ID}@9.9.9")
    assert r.status_code == 404, r.text


def _error(r, status):
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] and body["message"], body
    return body["message"]


def test_install_refuses_bad_requests(apps):
    taken = apps.install(unique("taken"))
    before = {a["id"] for a in apps.api.get("/apps").json()["apps"]}

    # The same location again, whatever the case of the request.
    assert taken["fqdn"] in _error(apps.request_install(taken["location"]), 409)
    _error(apps.request_install(taken["location"].upper()), 409)

    location = unique("bad")
    bad = [
        (apps.manifest(httpPort="eighty"), "manifest.httpPort"),
        (apps.manifest(httpPort=0), "manifest.httpPort"),
        (apps.manifest(manifestVersion=1), "manifest.manifestVersion"),
        (apps.manifest(healthCheckPath="health"), "manifest.healthCheckPath"),
        ({k: v for k, v in apps.manifest().items() if k != "dockerImage"}, "manifest.dockerImage"),
        (apps.manifest(tcpPorts={"SSH_PORT": {"title": "no port"}}), "manifest.tcpPorts.SSH_PORT"),
    ]
    for manifest, field in bad:
        message = _error(apps.request_install(location, manifest), 400)
        assert field in message, (field, message)

    assert "domain" in _error(apps.request_install(location, domain="nowhere.test"), 400)
    assert "memoryLimit" in _error(apps.request_install(location, memoryLimit=1000), 400)
    assert "env.BAD-NAME" in _error(apps.request_install(location, env={"BAD-NAME": "x"}), 400)
    assert "portBindings.NOPE" in _error(apps.request_install(location, portBindings={"NOPE": 20000}), 400)
    r = apps.api.post("/apps/install", json={"location": location, "domain": DOMAIN})
    assert "manifest" in _error(r, 400)

    # None of these left an app behind.
    assert {a["id"] for a in apps.api.get("/apps").json()["apps"]} == before
    assert apps.api.get(f"/apps/{uuid.uuid4()}").status_code == 404
    assert apps.api.post(f"/apps/{uuid.uuid4()}/restart").status_code == 404


# ---- lifecycle --------------------------------------------------------------------------------

def test_configure_env_memory_and_location(apps):
    app = apps.install(unique("conf"), env={"STAGE": "one"})
    app_id, old_fqdn = app["id"], app["fqdn"]

    task = apps.run(apps.api.post(f"/apps/{app_id}/configure/env", json={"env": {"STAGE": "two"}}))
    assert task["success"], task
    env = apps.container_env(old_fqdn)
    assert env["STAGE"] == "two"
    assert "STAGE=two" in apps.container(app_id)["Config"]["Env"]
    assert apps.app(app_id)["env"] == {"STAGE": "two"}

    task = apps.run(apps.api.post(f"/apps/{app_id}/configure/memory_limit", json={"memoryLimit": 96 * MIB}))
    assert task["success"], task
    assert apps.container(app_id)["HostConfig"]["Memory"] == 96 * MIB
    assert apps.app(app_id)["memoryLimit"] == 96 * MIB
    assert "memoryLimit" in _error(apps.api.post(f"/apps/{app_id}/configure/memory_limit",
                                                 json={"memoryLimit": 5}), 400)

    new_location = unique("moved")
    task = apps.run(apps.api.post(f"/apps/{app_id}/configure/location",
                                  json={"location": new_location, "domain": DOMAIN}))
    assert task["success"], task
    app = apps.app(app_id)
    new_fqdn = f"{new_location}.{DOMAIN}"
    assert app["installationState"] == "installed" and app["health"] == "healthy"
    assert (app["location"], app["fqdn"]) == (new_location, new_fqdn)
    status, _, body = apps.curl(new_fqdn)
    assert status == 200 and images.INDEX_MARKER in body
    status, _, body = apps.curl(old_fqdn)
    assert status == 404, body
    env = apps.container_env(new_fqdn)
    assert env["CLOUDRON_APP_DOMAIN"] == new_fqdn
    assert env["CLOUDRON_APP_ORIGIN"] == apps.origin(new_fqdn)
    assert env["STAGE"] == "two"                                        # kept across the move
    assert apps.container(app_id)["HostConfig"]["Memory"] == 96 * MIB  # likewise

    # The old name is free again; the new one is taken.
    other = apps.install(app["location"] + "x")
    assert _error(apps.api.post(f"/apps/{other['id']}/configure/location",
                                json={"location": new_location, "domain": DOMAIN}), 409)
    r = apps.request_install(old_fqdn.split(".")[0])
    assert r.status_code == 202, r.text
    assert apps.wait_task(r.json()["taskId"])["success"]


def test_stop_start_restart(apps):
    app = apps.install(unique("life"))
    app_id, fqdn = app["id"], app["fqdn"]
    assert apps.starts(app_id) == 1

    task = apps.run(apps.api.post(f"/apps/{app_id}/stop"))
    assert task["success"], task
    app = apps.app(app_id)
    assert (app["installationState"], app["runState"]) == ("installed", "stopped")
    assert not apps.container(app_id)["State"]["Running"]
    status, headers, body = apps.curl(fqdn)
    assert status == 503, body
    assert "This app is stopped" in body and images.INDEX_MARKER not in body
    assert headers["content-type"].startswith("text/html")

    task = apps.run(apps.api.post(f"/apps/{app_id}/start"))
    assert task["success"], task
    app = apps.app(app_id)
    assert (app["installationState"], app["runState"], app["health"]) == ("installed", "running", "healthy")
    status, _, body = apps.curl(fqdn)
    assert status == 200 and images.INDEX_MARKER in body
    assert apps.starts(app_id) == 2

    task = apps.run(apps.api.post(f"/apps/{app_id}/restart"))
    assert task["success"], task
    app = apps.app(app_id)
    assert (app["installationState"], app["runState"], app["health"]) == ("installed", "running", "healthy")
    status, _, body = apps.curl(fqdn)
    assert status == 200 and images.INDEX_MARKER in body
    assert apps.starts(app_id) == 3

    # A request made while another task runs on the app waits as pending, and the app shows that
    # newest request until it is done (never `installed` with work still queued). The app is read
    # before the task: a task seen pending was pending when the app was read.
    stop_task = apps.api.post(f"/apps/{app_id}/stop").json()["taskId"]
    start_task = apps.api.post(f"/apps/{app_id}/start").json()["taskId"]
    observed = 0
    while True:
        app = apps.app(app_id)
        task = apps.api.get(f"/tasks/{start_task}").json()
        if not task["pending"]:
            break
        assert (app["installationState"], app["taskId"]) == ("pending_start", start_task), app
        observed += 1
        time.sleep(0.02)
    assert observed, "the start request never waited for the stop task"
    assert apps.wait_task(stop_task)["success"] and apps.wait_task(start_task)["success"]
    app = apps.app(app_id)
    assert (app["installationState"], app["runState"], app["health"]) == ("installed", "running", "healthy")
    assert apps.starts(app_id) == 4


def test_uninstall_leaves_nothing_behind(apps):
    app = apps.install(unique("gone"))
    app_id, fqdn = app["id"], app["fqdn"]
    assert apps.container(app_id) is not None
    assert os.path.isdir(apps.app_dir(app_id)) and os.path.exists(apps.vhost(app_id))

    task = apps.run(apps.api.post(f"/apps/{app_id}/uninstall"))
    assert task["success"], task
    assert apps.api.get(f"/apps/{app_id}").status_code == 404
    assert app_id not in [a["id"] for a in apps.api.get("/apps").json()["apps"]]
    assert apps.container(app_id) is None
    assert not os.path.exists(apps.vhost(app_id))
    assert not os.path.exists(apps.app_dir(app_id))
    status, _, body = apps.curl(fqdn)
    assert status == 404, body
    assert apps.api.post(f"/apps/{app_id}/uninstall").status_code == 404

    # The location is free for the next app.
    again = apps.install(app["location"])
    assert again["fqdn"] == fqdn and again["id"] != app_id


# ---- failures and repair ----------------------------------------------------------------------

def test_missing_image_fails_clearly_and_repair_fixes_it(apps):
    missing = f"127.0.0.1:{_closed_port()}/berth-test/nope:1"
    r = apps.request_install(unique("pull"), apps.manifest(dockerImage=missing))
    assert r.status_code == 202, r.text
    app_id = r.json()["id"]
    task = apps.wait_task(r.json()["taskId"])
    assert not task["success"]
    assert "Cannot pull image" in task["error"]["message"] and missing in task["error"]["message"]
    assert f"Pulling image {missing}" in apps.task_log(task["id"])

    app = apps.app(app_id)
    assert app["installationState"] == "error", app
    assert "Cannot pull image" in app["error"]["message"]
    assert app["error"]["installationState"] == "pending_install"
    assert app["taskId"] is None
    assert apps.container(app_id) is None
    # Nginx says the app is broken, not that it is still being installed.
    status, _, body = apps.curl(app["fqdn"])
    assert status == 503 and "not available" in body, body
    # Only repair, configure or uninstall make sense now.
    assert "repair" in _error(apps.api.post(f"/apps/{app_id}/start"), 409)

    task = apps.run(apps.api.post(f"/apps/{app_id}/repair", json={"dockerImage": apps.image}))
    assert task["success"], task
    app = apps.app(app_id)
    assert (app["installationState"], app["runState"], app["health"]) == ("installed", "running", "healthy")
    assert app["error"] is None
    assert app["manifest"]["dockerImage"] == apps.image
    status, _, body = apps.curl(app["fqdn"])
    assert status == 200 and images.INDEX_MARKER in body


def test_server_killed_during_install_leaves_app_in_error(parts, tmp_path_factory):
    berth = _berth(parts, tmp_path_factory)
    try:
        berth.start()
        keep = berth.install(unique("keep"))
        r = berth.request_install(unique("crash"), env={"TEST_HEALTH_DELAY": "30"})
        assert r.status_code == 202, r.text
        app_id, task_id = r.json()["id"], r.json()["taskId"]
        # Let the task get as far as waiting for the health check (container created and running).
        deadline = time.time() + 30
        while berth.api.get(f"/tasks/{task_id}").json()["percent"] < 80:
            assert time.time() < deadline, berth.api.get(f"/tasks/{task_id}").json()
            time.sleep(0.1)
        assert berth.app(app_id)["installationState"] == "pending_install"
        berth.server.kill()
        # While Berth is down, an installed app loses its container and its vhost file.
        berth.docker.containers.get(berth.container(keep["id"])["Id"]).remove(force=True)
        os.unlink(berth.vhost(keep["id"]))

        berth.start()   # same data dir, same database, same nginx
        app = berth.wait_app(app_id, "in error after the restart",
                             lambda a: a["installationState"] == "error", timeout=20)
        assert app["error"]["message"], app
        assert app["error"]["installationState"] == "pending_install"
        assert app["taskId"] is None
        task = berth.api.get(f"/tasks/{task_id}").json()
        assert not task["active"] and not task["success"], task
        berth.wait_page(app["fqdn"], "showed the error page",
                        lambda status, body: status == 503 and "not available" in body)

        # Start-up reconciliation re-created the missing container and rewrote the vhost.
        berth.wait_app(keep["id"], "healthy again with a new container",
                       lambda a: a["installationState"] == "installed" and a["health"] == "healthy"
                       and berth.container(keep["id"]) is not None, timeout=20)
        assert os.path.exists(berth.vhost(keep["id"]))
        berth.wait_page(keep["fqdn"], "served the app again",
                        lambda status, body: status == 200 and images.INDEX_MARKER in body)

        # Dropping the slow health check through configure re-creates the app...
        task = berth.run(berth.api.post(f"/apps/{app_id}/configure/env", json={"env": {}}))
        assert task["success"], task
        app = berth.app(app_id)
        assert (app["installationState"], app["health"], app["error"]) == ("installed", "healthy", None)
        status, _, body = berth.curl(app["fqdn"])
        assert status == 200 and images.INDEX_MARKER in body
        # ...and repair of an installed app re-creates its container from the stored settings.
        before = berth.container(app_id)["Id"]
        task = berth.run(berth.api.post(f"/apps/{app_id}/repair", json={}))
        assert task["success"], task
        assert berth.container(app_id)["Id"] != before
        assert berth.app(app_id)["installationState"] == "installed"
        status, _, body = berth.curl(app["fqdn"])
        assert status == 200 and images.INDEX_MARKER in body
    finally:
        berth.close()


def test_container_killed_from_outside_is_reported_and_comes_back(apps):
    app = apps.install(unique("kill"))
    app_id = app["id"]
    container = apps.docker.containers.get(apps.container(app_id)["Id"])
    # Running but failing its health path: unhealthy (the health check runs every 10 s).
    assert container.exec_run(["rm", "/www/health"]).exit_code == 0
    app = apps.wait_app(app_id, "reported unhealthy", lambda a: a["health"] == "unhealthy", timeout=25)
    assert (app["installationState"], app["runState"]) == ("installed", "running")
    status, _, body = apps.curl(app["fqdn"])
    assert status == 200 and images.INDEX_MARKER in body     # unhealthy is reported, not hidden
    assert apps.starts(app_id) == 1
    container.kill()
    # The health check runs every 10 s: it sees the app down, reports it, and starts it again.
    down = apps.wait_app(app_id, "reported dead", lambda a: a["health"] == "dead", timeout=25)
    assert down["installationState"] == "installed"
    app = apps.wait_app(app_id, "healthy again", lambda a: a["health"] == "healthy", timeout=25)
    assert app["runState"] == "running"
    assert apps.container(app_id)["State"]["Running"]
    assert apps.starts(app_id) == 2
    status, _, body = apps.curl(app["fqdn"])
    assert status == 200 and images.INDEX_MARKER in body


# ---- logs -------------------------------------------------------------------------------------

def _events(lines, until, timeout=20):
    """Read SSE events from `lines` (one iter_lines() of the response: a second one would lose
    what the first buffered) until `until(data)` is true for one; (retry seen, [data dicts])."""
    retry, seen, event = False, [], {}
    deadline = time.time() + timeout
    for raw in lines:
        assert time.time() < deadline, f"no matching event within {timeout}s: {seen}"
        if raw.startswith("retry:"):
            retry = True
        elif raw.startswith("id:"):
            event["id"] = raw[3:].strip()
        elif raw.startswith("data:"):
            event["data"] = json.loads(raw[5:].strip())
        elif raw == "" and "data" in event:
            seen.append(event["data"])
            event = {}
            if until(seen[-1]):
                return retry, seen
    raise AssertionError(f"stream ended before a matching event: {seen}")


def test_logs_and_logstream(apps):
    app = apps.install(unique("logs"))
    app_id, fqdn = app["id"], app["fqdn"]

    r = apps.api.get(f"/apps/{app_id}/logs", params={"lines": 50})
    assert r.status_code == 200, r.text
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert {line["source"] for line in lines} == {app_id}
    messages = [line["message"] for line in lines]
    assert f"berth-test: starting on port {images.PORT}" in messages
    assert "berth-test: healthy" in messages
    ids = [line["realtimeTimestamp"] for line in lines]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    plain = apps.api.get(f"/apps/{app_id}/logs", params={"lines": 2, "format": "plain"})
    assert plain.status_code == 200 and len(plain.text.splitlines()) == 2
    assert apps.api.get(f"/apps/{uuid.uuid4()}/logs").status_code == 404

    url = f"{apps.api.base}/apps/{app_id}/logstream"
    auth = {"Authorization": f"Bearer {apps.api.token}"}
    assert requests.get(url, headers=auth, timeout=10).status_code == 400   # not an event stream
    with requests.get(url, params={"lines": 100}, stream=True, timeout=30,
                      headers={**auth, "Accept": "text/event-stream"}) as stream:
        assert stream.status_code == 200, stream.text
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines(decode_unicode=True)
        retry, replay = _events(lines, lambda d: d["message"] == "berth-test: healthy")
        assert retry and {d["source"] for d in replay} == {app_id}
        # New output arrives as it is written: the image logs each request it serves (the same
        # host clock stamps the lines, so "after t0" means written after this request).
        t0 = int(time.time() * 1_000_000)
        status, _, _ = apps.curl(fqdn)
        assert status == 200
        _events(lines, lambda d: "response:200" in d["message"] and d["realtimeTimestamp"] > t0)


# ---- who sees what ----------------------------------------------------------------------------

def test_plain_users_see_only_apps_they_may_use(apps):
    password = "User-pass-1"
    name = unique("user").replace("-", "")
    r = apps.api.post("/users", json={"username": name, "email": f"{name}@example.com",
                                      "password": password, "role": "user"})
    assert r.status_code == 201, r.text
    user_id = r.json()["id"]
    login = Api(apps.api.base).post("/cloudron/login", json={"username": name, "password": password})
    assert login.status_code == 200, login.text
    user = apps.api.with_token(login.json()["token"])

    app = apps.install(unique("acl"), env={"SECRET_SETTING": "x"},
                       accessRestriction={"users": [user_id], "groups": []})
    app_id = app["id"]

    def visible():
        r = user.get("/apps")
        assert r.status_code == 200, r.text
        return {a["id"]: a for a in r.json()["apps"]}

    seen = visible()[app_id]
    assert seen["fqdn"] == app["fqdn"] and seen["installationState"] == "installed"
    for hidden in ("env", "accessRestriction", "memoryLimit", "error", "debugMode", "robotsTxt"):
        assert hidden not in seen, hidden
    assert user.get(f"/apps/{app_id}").status_code == 403
    assert user.post(f"/apps/{app_id}/stop").status_code == 403
    assert user.post("/apps/install", json={"location": unique("no"), "domain": DOMAIN,
                                            "manifest": apps.manifest()}).status_code == 403

    def restrict(restriction):
        r = apps.api.post(f"/apps/{app_id}/configure/access_restriction",
                          json={"accessRestriction": restriction})
        assert r.status_code == 200, r.text
        assert r.json() == {}

    restrict({"users": [], "groups": []})
    assert app_id not in visible()
    r = apps.api.post("/groups", json={"name": unique("team")})
    assert r.status_code == 201, r.text
    group_id = r.json()["id"]
    restrict({"users": [], "groups": [group_id]})
    assert app_id not in visible()
    r = apps.api.put(f"/groups/{group_id}/members", json={"userIds": [user_id]})
    assert r.status_code == 200, r.text
    assert app_id in visible()
    restrict(None)                   # everyone
    assert app_id in visible()
    assert apps.app(app_id)["accessRestriction"] is None


# ---- the other database -----------------------------------------------------------------------

def test_install_and_uninstall_on_postgresql(parts, postgres, tmp_path_factory):
    """The app lifecycle's own SQL (queue, state guards, uniqueness) on PostgreSQL: one round."""
    berth = _berth(parts, tmp_path_factory, postgres.new_database())
    try:
        berth.start()
        app = berth.install(unique("pg"), env={"DB": "pg"})
        assert (app["health"], app["env"]) == ("healthy", {"DB": "pg"})
        status, _, body = berth.curl(app["fqdn"])
        assert status == 200 and images.INDEX_MARKER in body
        assert berth.request_install(app["location"]).status_code == 409
        task = berth.run(berth.api.post(f"/apps/{app['id']}/uninstall"))
        assert task["success"], task
        assert berth.api.get(f"/apps/{app['id']}").status_code == 404
        assert berth.container(app["id"]) is None
    finally:
        berth.close()


def test_alias_and_redirect_domains_and_icon(apps):
    app = apps.install(unique("names"))
    app_id, fqdn = app["id"], app["fqdn"]
    alias, redirect = unique("alias"), unique("redir")
    task = apps.run(apps.api.post(f"/apps/{app_id}/configure/location", json={
        "location": app["location"], "domain": DOMAIN,
        "alternateDomains": [{"domain": DOMAIN, "subdomain": alias}],
        "redirectDomains": [{"domain": DOMAIN, "subdomain": redirect}]}))
    assert task["success"], task
    status, _, body = apps.curl(f"{alias}.{DOMAIN}")
    assert status == 200 and images.INDEX_MARKER in body
    status, headers, _ = apps.curl(f"{redirect}.{DOMAIN}")
    assert status == 301 and fqdn in headers.get("location", ""), headers
    # the alias name is now taken for other apps
    assert _error(apps.request_install(alias), 409)

    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 32
    assert apps.api.get(f"/apps/{app_id}/icon").status_code == 404
    r = apps.api.post(f"/apps/{app_id}/configure/icon", json={"icon": base64.b64encode(png).decode()})
    assert r.status_code == 200, r.text
    got = apps.api.get(f"/apps/{app_id}/icon")
    assert got.status_code == 200 and got.content == png
    assert apps.app(app_id)["iconUrl"] == f"/api/v1/apps/{app_id}/icon"
    assert "icon" in _error(apps.api.post(f"/apps/{app_id}/configure/icon", json={"icon": "bm90IGFuIGltYWdl"}), 400)
    assert apps.api.post(f"/apps/{app_id}/configure/icon", json={"icon": None}).status_code == 200
    assert apps.api.get(f"/apps/{app_id}/icon").status_code == 404


def test_debug_mode_runs_the_given_command(apps):
    app = apps.install(unique("debug"))
    app_id = app["id"]
    cmd = ["/bin/busybox", "sh", "-c", "echo debugging > /app/data/debug-marker; exec /bin/busybox sleep 3600"]
    task = apps.run(apps.api.post(f"/apps/{app_id}/configure/debug_mode", json={"debugMode": {"cmd": cmd}}))
    assert task["success"], task
    config = apps.container(app_id)["Config"]
    assert config["Entrypoint"] + config["Cmd"] == cmd
    deadline = time.time() + 10
    marker = os.path.join(apps.app_dir(app_id), "data", "debug-marker")
    while not os.path.exists(marker) and time.time() < deadline:
        time.sleep(0.1)
    assert open(marker).read().strip() == "debugging"
    assert apps.app(app_id)["debugMode"]["cmd"] == cmd
    task = apps.run(apps.api.post(f"/apps/{app_id}/configure/debug_mode", json={"debugMode": None}))
    assert task["success"], task
    assert apps.container(app_id)["Config"]["Entrypoint"] == ["/bin/sh", "/start.sh"]
    assert apps.app(app_id)["health"] == "healthy"


def test_update_to_a_new_manifest(apps):
    app = apps.install(unique("upd"))
    app_id = app["id"]
    newer = apps.manifest(version="1.1.0")
    task = apps.run(apps.api.post(f"/apps/{app_id}/update", json={"manifest": newer}))
    assert task["success"], task
    got = apps.app(app_id)
    assert got["manifest"]["version"] == "1.1.0" and got["installationState"] == "installed"
    assert got["health"] == "healthy"
    other = apps.manifest(id="io.berth.test.other")
    assert "manifest.id" in _error(apps.api.post(f"/apps/{app_id}/update", json={"manifest": other}), 400)


def test_automatic_update_from_the_catalog_on_schedule(apps):
    older = apps.install(unique("auto"), appStoreId=f"{CATALOG_ID}@1.0.0")
    pinned = apps.install(unique("pinned"), appStoreId=f"{CATALOG_ID}@1.0.0")
    assert apps.api.post(f"/apps/{pinned['id']}/configure/automatic_update", json={"enable": False}).status_code == 200
    assert "pattern" in _error(apps.api.post("/settings/app_autoupdate_pattern", json={"pattern": "every day"}), 400)
    assert apps.api.post("/settings/app_autoupdate_pattern", json={"pattern": "* * * * * *"}).status_code == 200
    try:
        assert apps.api.get("/settings/app_autoupdate_pattern").json() == {"pattern": "* * * * * *"}
        app = apps.wait_app(older["id"], "updated to 1.1.0",
                            lambda a: a["manifest"]["version"] == "1.1.0" and a["installationState"] == "installed",
                            timeout=40)
        assert app["appStoreId"] == f"{CATALOG_ID}@1.1.0" and app["health"] == "healthy"
        assert apps.container(older["id"])["HostConfig"]["Memory"] == 67108864  # the 1.1.0 manifest's limit
        assert apps.app(pinned["id"])["manifest"]["version"] == "1.0.0"
    finally:
        assert apps.api.post("/settings/app_autoupdate_pattern", json={"pattern": "never"}).status_code == 200
