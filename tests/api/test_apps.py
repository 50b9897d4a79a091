"""Apps for real: a Berth server (SQLite) installs the FROM-scratch busybox test image
(tests/support/images.py) on the real Docker engine behind its own nginx, and everything is checked
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
import time
import uuid

import pytest
import requests

from support import images
from support.apps_env import CATALOG_ID, DOMAIN, MIB, _berth, _closed_port, apps_berth, unique
from support.harness import Api


@pytest.fixture(scope="module")
def apps(parts, tmp_path_factory):
    with apps_berth(parts, tmp_path_factory) as env:
        yield env


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
    assert app["appStoreId"] == CATALOG_ID                  # as sent, as Cloudron returns it
    assert app["manifest"]["version"] == "1.1.0"            # the highest version
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


def _berth_containers(apps):
    """This server's app containers (each binds its data under the server's data dir): other
    servers of the run, in other pytest-xdist workers, make and remove theirs meanwhile."""
    found = apps.docker.containers.list(all=True, filters={"label": "berth.managed=true"})
    mine = os.path.join(str(apps.data_dir), "")
    return {c.id for c in found if any(m.get("Source", "").startswith(mine) for m in c.attrs.get("Mounts") or ())}


def test_install_refuses_bad_requests(apps):
    taken = apps.install(unique("taken"))
    before = {a["id"] for a in apps.api.get("/apps").json()["apps"]}
    containers = _berth_containers(apps)

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

    # An app's domain Berth does not have is a 404, as Cloudron answers ("No such domain").
    assert "No such domain" in _error(apps.request_install(location, domain="nowhere.test"), 404)
    # accessRestriction is required: null (every user) or {users, groups}; missing or a string is a 400.
    body = {"location": location, "domain": DOMAIN, "manifest": apps.manifest()}
    assert "accessRestriction" in _error(apps.api.post("/apps/install", json=body), 400)
    for route in ("/apps/install", "/apps"):
        for bad in ("everyone", 1, ["uid-x"], {"users": "uid-x"}):
            r = apps.api.post(route, json={**body, "accessRestriction": bad})
            assert "accessRestriction" in _error(r, 400), (route, bad)
        r = apps.api.post(route, json={**body, "accessRestriction": None, "domain": "nowhere.test"})
        assert "No such domain" in _error(r, 404), route
    assert "memoryLimit" in _error(apps.request_install(location, memoryLimit=1000), 400)
    assert "env.BAD-NAME" in _error(apps.request_install(location, env={"BAD-NAME": "x"}), 400)
    assert "portBindings.NOPE" in _error(apps.request_install(location, portBindings={"NOPE": 20000}), 400)
    r = apps.api.post("/apps/install", json={"location": location, "domain": DOMAIN, "accessRestriction": None})
    assert "manifest" in _error(r, 400)

    # None of these left an app or a container behind.
    assert {a["id"] for a in apps.api.get("/apps").json()["apps"]} == before
    assert _berth_containers(apps) == containers
    assert apps.api.get(f"/apps/{uuid.uuid4()}").status_code == 404
    assert apps.api.post(f"/apps/{uuid.uuid4()}/restart").status_code == 404


def test_modern_install_takes_subdomain_and_ports_and_apps_carry_both_names(apps):
    manifest = apps.manifest(tcpPorts={"ECHO_PORT": {"title": "echo", "defaultValue": 2222}})
    port, subdomain = _closed_port(), unique("modern")   # an ephemeral port: above 1024, free
    r = apps.api.post("/apps", json={"subdomain": subdomain, "domain": DOMAIN, "manifest": manifest,
                                     "ports": {"ECHO_PORT": port}, "accessRestriction": None})
    assert r.status_code == 202 and set(r.json()) == {"id", "taskId"}, r.text
    apps.app_ids.add(r.json()["id"])
    assert apps.wait_task(r.json()["taskId"])["success"]
    app = apps.app(r.json()["id"])
    assert (app["location"], app["subdomain"]) == (subdomain, subdomain)
    assert app["portBindings"] == app["ports"] == {"ECHO_PORT": port}
    assert app["fqdn"] == f"{subdomain}.{DOMAIN}"
    listed = {a["id"]: a for a in apps.api.get("/apps").json()["apps"]}[app["id"]]
    assert (listed["subdomain"], listed["ports"]) == (subdomain, {"ECHO_PORT": port})
    # Both spellings of one field must agree.
    r = apps.api.post("/apps", json={"subdomain": unique("a"), "location": unique("b"), "domain": DOMAIN,
                                     "manifest": apps.manifest(), "accessRestriction": None})
    assert "location" in _error(r, 400)


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
    assert pinned["appStoreId"] == f"{CATALOG_ID}@1.0.0"    # as sent
    assert apps.api.post(f"/apps/{pinned['id']}/configure/automatic_update", json={"enable": False}).status_code == 200
    # GET /updater/updates (Cloudron 7+) lists what the catalog has newer, for every app; no platform part.
    updates = apps.api.get("/updater/updates").json()["updates"]
    assert "box" not in updates
    for app in (older, pinned):
        assert updates[app["id"]]["manifest"]["version"] == "1.1.0" and updates[app["id"]]["unstable"] is False
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
        updates = apps.api.get("/updater/updates").json()["updates"]
        assert older["id"] not in updates and pinned["id"] in updates
    finally:
        assert apps.api.post("/settings/app_autoupdate_pattern", json={"pattern": "never"}).status_code == 200


# ---- stored names and who sees icons (security review findings 13 and 16) ---------------------

NGINX_SYNTAX = "x y;} include /etc"


def test_alias_with_nginx_syntax_refused(apps):
    """An alias or redirect subdomain is a DNS label like `location`: text meant for nginx is a
    400 naming the entry, and nothing is stored (it used to be stored and break reconciliation)."""
    app = apps.install(unique("syntax"))
    app_id = app["id"]
    for kind in ("alternateDomains", "redirectDomains"):
        for subdomain in (NGINX_SYNTAX, "a.b", "-x"):
            r = apps.api.post(f"/apps/{app_id}/configure/location", json={
                "location": app["location"], "domain": DOMAIN, kind: [{"domain": DOMAIN, "subdomain": subdomain}]})
            message = _error(r, 400)
            assert message.startswith(f"{kind}.0.subdomain: "), message
    got = apps.app(app_id)
    assert (got["alternateDomains"], got["redirectDomains"], got["taskId"]) == ([], [], None)
    assert got["installationState"] == "installed"


def test_domain_with_trailing_dot_and_case_is_stored_normalised_and_protected_from_delete(apps):
    other = f"{unique('other')}.test"
    r = apps.api.post("/domains", json={"domain": other, "provider": "noop", "config": {}})
    assert r.status_code == 201, r.text
    spelled = other.upper() + "."
    app = apps.install(unique("Dot").upper(), domain=spelled)
    assert app["domain"] == other and app["location"] == app["location"].lower()
    assert app["fqdn"] == f"{app['location']}.{other}"
    status, _, body = apps.curl(app["fqdn"])
    assert status == 200 and images.INDEX_MARKER in body
    assert app["id"] in _error(apps.api.delete(f"/domains/{other}"), 409)

    # The same on configure, for the main name, aliases and redirects.
    task = apps.run(apps.api.post(f"/apps/{app['id']}/configure/location", json={
        "location": app["location"], "domain": f" {spelled} ",
        "alternateDomains": [{"domain": spelled, "subdomain": "ALIAS"}],
        "redirectDomains": [{"domain": spelled, "subdomain": "Old"}]}))
    assert task["success"], task
    got = apps.app(app["id"])
    assert got["domain"] == other
    assert got["alternateDomains"] == [{"domain": other, "subdomain": "alias"}]
    assert got["redirectDomains"] == [{"domain": other, "subdomain": "old"}]
    status, _, body = apps.curl(f"alias.{other}")
    assert status == 200 and images.INDEX_MARKER in body
    assert app["id"] in _error(apps.api.delete(f"/domains/{other.upper()}."), 409)

    assert apps.run(apps.api.post(f"/apps/{app['id']}/uninstall"))["success"]
    assert apps.api.delete(f"/domains/{other}").status_code == 204


def test_icon_of_a_restricted_app_is_refused_outside_its_access_restriction(apps):
    """GET /apps/{id}/icon applies the rule of GET /apps: a user the app is hidden from gets 404."""
    users = {}
    for who in ("allowed", "outside"):
        name = unique(who).replace("-", "")
        r = apps.api.post("/users", json={"username": name, "email": f"{name}@example.com",
                                          "password": "User-pass-1", "role": "user"})
        assert r.status_code == 201, r.text
        login = Api(apps.api.base).post("/cloudron/login", json={"username": name, "password": "User-pass-1"})
        assert login.status_code == 200, login.text
        users[who] = (r.json()["id"], apps.api.with_token(login.json()["token"]))
    app = apps.install(unique("icon"), accessRestriction={"users": [users["allowed"][0]], "groups": []})
    png = b"\x89PNG\r\n\x1a\n" + b"\1" * 16
    r = apps.api.post(f"/apps/{app['id']}/configure/icon", json={"icon": base64.b64encode(png).decode()})
    assert r.status_code == 200, r.text

    allowed, outside = users["allowed"][1], users["outside"][1]
    assert app["id"] not in [a["id"] for a in outside.get("/apps").json()["apps"]]
    r = outside.get(f"/apps/{app['id']}/icon")
    assert r.status_code == 404 and r.content != png, r.text
    got = allowed.get(f"/apps/{app['id']}/icon")
    assert got.status_code == 200 and got.content == png
    assert apps.api.get(f"/apps/{app['id']}/icon").content == png
    # Lifting the restriction shows the icon to everyone.
    assert apps.api.post(f"/apps/{app['id']}/configure/access_restriction",
                         json={"accessRestriction": None}).status_code == 200
    assert outside.get(f"/apps/{app['id']}/icon").content == png


def test_one_bad_stored_alias_does_not_stop_health_checks_of_other_apps(parts, tmp_path_factory):
    """A row with an alias nginx must not get (written to the database directly, as rows stored
    before the check was added are) is reported at start-up and keeps its vhost; every other app
    is still reconciled and health-checked: its stopped container is started again and its
    deleted vhost rewritten."""
    from models import database, open_database
    from models.apps import App

    berth = _berth(parts, tmp_path_factory)
    try:
        berth.start()
        keep, bad = berth.install(unique("keep")), berth.install(unique("bad"))
        berth.server.stop()
        open_database("sqlite:///" + os.path.join(berth.data_dir, "berth.db"))
        try:
            App.update(alternate_domains=[{"domain": DOMAIN, "subdomain": NGINX_SYNTAX}]).where(
                App.id == bad["id"]).execute()
        finally:
            database.close()
        # While Berth is down, the other app's container stops and its vhost file goes away.
        berth.docker.containers.get(berth.container(keep["id"])["Id"]).stop(timeout=1)
        os.unlink(berth.vhost(keep["id"]))

        berth.start()
        berth.wait_app(keep["id"], "health-checked and started again",
                       lambda a: a["health"] == "healthy" and berth.container(keep["id"])["State"]["Running"],
                       timeout=40)
        berth.wait_page(keep["fqdn"], "served again from its rewritten vhost",
                        lambda status, body: status == 200 and images.INDEX_MARKER in body, timeout=20)
        events = berth.api.get("/cloudron/eventlog", params={"action": "app.reconcile_skipped"}).json()["eventlogs"]
        assert [e["data"]["appId"] for e in events] == [bad["id"]], events
        assert NGINX_SYNTAX not in open(berth.vhost(bad["id"])).read()
        status, _, body = berth.curl(bad["fqdn"])        # the damaged app keeps being served
        assert status == 200 and images.INDEX_MARKER in body
    finally:
        berth.close()
