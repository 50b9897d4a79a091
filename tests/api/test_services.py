"""/services over HTTP against a real server: the Docker engine and Berth's nginx as they really
are (status from the processes, nginx stopped from outside and back on restart, logs where the
programs write them), the refusals (unknown name 404, memory limit of a host service 409,
non-numeric 400), and the addon services once apps made them (see the second half)."""
import hashlib
import json
import os
import shutil
import threading
import time

import pytest
import requests

from support.apps_env import _docker
from support.harness import BerthServer, activate, remove_app_containers, require, stop_proxy


@pytest.fixture(scope="module")
def berth():
    require("a Docker engine (Debian package docker.io, dockerd running)", _docker() is not None)
    require("nginx (Debian package nginx)", shutil.which("nginx") is not None)
    server = BerthServer().start()
    server.owner = activate(server)
    yield server
    server.cleanup()


@pytest.fixture
def owner(berth):
    return berth.owner


def wait_status(api, name, wanted, timeout=30):
    deadline = time.time() + timeout
    while True:
        r = api.get(f"/services/{name}")
        assert r.status_code == 200, r.text
        service = r.json()["service"]
        if service["status"] == wanted:
            return service
        assert time.time() < deadline, f"{name} did not become {wanted}: {service}"
        time.sleep(0.2)


def events(api, action):
    r = api.get("/cloudron/eventlog", params={"action": action, "per_page": 100})
    assert r.status_code == 200, r.text
    return r.json()["eventlogs"]


class EventStream:
    """A minimal EventSource client: yields {id, data} per event block (comments skipped)."""

    def __init__(self, api, path, **params):
        headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {api.token}"}
        self.response = requests.get(api.base + path, headers=headers, params=params, stream=True, timeout=30)
        self._chunks = self.response.iter_content(chunk_size=None)

    def __iter__(self):
        buffer = ""
        while True:
            while "\n\n" not in buffer:
                chunk = next(self._chunks, None)
                if chunk is None:
                    return
                buffer += chunk.decode()
            block, buffer = buffer.split("\n\n", 1)
            event = {"id": None, "data": None}
            for line in block.split("\n"):
                field, _, value = line.partition(":")
                if field in event:
                    event[field] = value[1:] if value.startswith(" ") else value
            yield event

    def close(self):
        self.response.close()


# ---------------------------------------------------------------------------------------------
# host services: docker and nginx

def test_list_shows_docker_and_nginx_and_nothing_that_is_not_there(owner):
    r = owner.get("/services")
    assert r.status_code == 200, r.text
    names = r.json()["services"]
    assert "docker" in names and "nginx" in names
    for absent in ("mongodb", "unbound", "sftp", "graphite"):
        assert absent not in names  # never a name for something this server does not run

    docker = owner.get("/services/docker").json()["service"]
    assert docker["name"] == "docker" and docker["status"] == "active" and docker["error"] is None
    assert docker["memoryUsed"] > 1024 * 1024  # dockerd's resident memory, read from the process
    assert 0 <= docker["memoryPercent"] <= 100
    assert docker["config"] == {}  # no memory/memorySwap: a host service's limit cannot be set


def test_unknown_or_malformed_names(owner):
    for name in ("mongodb", "unbound", "redis:no-such-app", "nosuch"):
        r = owner.get(f"/services/{name}")
        assert r.status_code == 404, (name, r.text)
        assert r.json()["message"] == "No such service"
        assert owner.post(f"/services/{name}/restart").status_code == 404
        assert owner.get(f"/services/{name}/logs").status_code == 404
    assert owner.get("/services/Bad%20Name").status_code == 400


def test_memory_limit_refusals(owner):
    for body in ({"memory": "lots"}, {"memory": 1.5}, {"memory": -1}, {}):
        r = owner.post("/services/nginx", json=body)
        assert r.status_code == 400, (body, r.text)
    for name in ("nginx", "docker"):
        r = owner.post(f"/services/{name}", json={"memory": 256 * 1024 * 1024})
        assert r.status_code == 409, r.text
        assert "host" in r.json()["message"] and "not in a container" in r.json()["message"]
    assert owner.post("/services/mongodb", json={"memory": 1}).status_code == 404
    assert owner.post("/services/docker/rebuild").status_code == 409


def test_nginx_stopped_from_outside_comes_back_on_restart(berth, owner):
    assert owner.post("/services/nginx/restart").status_code == 202
    nginx = wait_status(owner, "nginx", "active")
    assert nginx["memoryUsed"] > 0 and nginx["error"] is None

    assert stop_proxy(berth.data_dir)  # killed behind Berth's back
    wait_status(owner, "nginx", "stopped", timeout=10)

    r = owner.post("/services/nginx/restart")
    assert r.status_code == 202 and r.json() == {}
    wait_status(owner, "nginx", "active")
    port = berth.env["BERTH_PROXY_HTTP_PORT"]
    assert requests.get(f"http://127.0.0.1:{port}/", timeout=5).status_code in (404, 503)  # it serves again

    master = int(open(os.path.join(berth.data_dir, "nginx", "nginx.pid")).read())
    assert owner.post("/services/nginx/restart").status_code == 202  # running: a reload, same master
    assert int(open(os.path.join(berth.data_dir, "nginx", "nginx.pid")).read()) == master
    assert owner.post("/services/nginx/rebuild").status_code == 202
    wait_status(owner, "nginx", "active")
    assert [e for e in events(owner, "service.restart") if e["data"].get("id") == "nginx"]
    assert [e for e in events(owner, "service.rebuild") if e["data"].get("id") == "nginx"]


def _nginx_line(message):
    return time.strftime("%Y/%m/%d %H:%M:%S") + f" [warn] 4242#4242: {message}\n"


def test_nginx_logs_and_logstream(berth, owner):
    assert owner.post("/services/nginx/restart").status_code == 202
    error_log = os.path.join(berth.data_dir, "nginx", "logs", "error.log")
    with open(error_log, "a") as f:
        f.write(_nginx_line("first test line"))
    before = time.time()
    r = owner.get("/services/nginx/logs", params={"lines": 1})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/x-logs")
    line = json.loads(r.text.strip())
    assert line["message"] == "[warn] 4242#4242: first test line" and line["source"] == "nginx"
    assert abs(line["realtimeTimestamp"] / 1e6 - before) < 5  # nginx's local time, converted
    plain = owner.get("/services/nginx/logs", params={"lines": 1, "format": "plain"}).text
    assert plain.endswith("[warn] 4242#4242: first test line\n") and "/" in plain[:10]
    assert owner.get("/services/nginx/logs", params={"format": "xml"}).status_code == 400

    stream = EventStream(owner, "/services/nginx/logstream", lines=1)
    assert stream.response.status_code == 200
    assert stream.response.headers["Content-Type"].startswith("text/event-stream")
    received = []

    def read():
        try:
            for event in stream:
                if event["data"]:
                    received.append(event)
                    if "second test line" in event["data"]:
                        return
        except requests.RequestException:
            pass
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.5)
    with open(error_log, "a") as f:
        f.write(_nginx_line("second test line"))
    reader.join(15)
    stream.close()
    messages = [json.loads(e["data"])["message"] for e in received]
    assert messages == ["[warn] 4242#4242: first test line", "[warn] 4242#4242: second test line"]
    ids = [int(e["id"]) for e in received]
    assert ids == sorted(set(ids))
    assert owner.get("/services/nginx/logstream").status_code == 400  # not an EventSource request


def test_docker_logs_are_the_engines(owner):
    r = owner.get("/services/docker/logs", params={"lines": 3})
    assert r.status_code == 200, r.text
    lines = [json.loads(text) for text in r.text.splitlines()]
    if not lines:
        pytest.skip("this dockerd's log is not readable here (not a file, no journal)")
    assert len(lines) == 3 and all(line["source"] == "docker" for line in lines)
    assert all(line["realtimeTimestamp"] > 1_500_000_000 * 10**6 for line in lines)  # dockerd's own times
    assert all(line["message"].startswith("level=") for line in lines if "level=" in line["message"])


def test_platform_config_without_addon_services(owner):
    r = owner.get("/settings/platform_config")
    assert r.status_code == 200, r.text
    assert all(name in ("postgresql", "mysql") for name in r.json())
    r = owner.post("/settings/platform_config", json={"mail": {"memory": 1, "memorySwap": 1}})
    assert r.status_code == 400 and "mail" in r.json()["message"]
    r = owner.post("/settings/platform_config", json={"mongodb": {"memory": "x", "memorySwap": 1}})
    assert r.status_code == 400
    assert owner.post("/settings/platform_config", json={}).status_code == 200


# ---------------------------------------------------------------------------------------------
# addon services: the shared PostgreSQL and an app's Redis, made by installing an app that needs them

@pytest.fixture(scope="module")
def addons_berth(parts, tmp_path_factory):
    from support.apps_env import _berth
    env = _berth(parts, tmp_path_factory).start()
    manifest = env.manifest(addons={"postgresql": {}, "redis": {}})
    r = env.request_install("svc", manifest)
    assert r.status_code == 202, r.text
    # The first install may build the service images from Debian packages (minutes, offline).
    task = env.wait_task(r.json()["taskId"], timeout=1200)
    assert task["success"], (task, env.task_log(r.json()["taskId"])[-3000:])
    env.app_id = r.json()["id"]
    yield env
    try:
        env.server.stop()  # first: its health monitor would start the services again
        remove_app_containers(env.app_ids)
        # The service containers and the app network of that server (its instance label).
        mine = f"berth.instance={_instance(env)}"
        for container in env.docker.containers.list(all=True, filters={"label": ["berth.service", mine]}):
            container.remove(force=True, v=True)
        for network in env.docker.networks.list(filters={"label": mine}):
            network.remove()
    finally:
        env.close()


def _instance(env):
    """containers.instance_id() of that server: its data dir's hash."""
    return hashlib.sha256(os.path.realpath(env.data_dir).encode()).hexdigest()[:16]


def _engine_container(env, service):
    found = env.docker.containers.list(all=True, filters={
        "label": [f"berth.service={service}", f"berth.instance={_instance(env)}"]})
    assert len(found) == 1, found
    return found[0]


def test_addon_services_appear_once_an_app_made_them(addons_berth):
    api, app_id = addons_berth.api, addons_berth.app_id
    names = api.get("/services").json()["services"]
    assert "postgresql" in names and f"redis:{app_id}" in names
    assert "mysql" not in names  # no app asked for it: nothing there
    pg = wait_status(api, "postgresql", "active", timeout=90)
    assert pg["memoryUsed"] > 0 and pg["config"]["memory"] > 0 and pg["error"] is None
    redis = wait_status(api, f"redis:{app_id}", "active", timeout=90)
    assert redis["name"] == f"redis:{app_id}"

    lines = [json.loads(t) for t in api.get("/services/postgresql/logs", params={"lines": -1}).text.splitlines()]
    assert any("ready to accept connections" in line["message"] for line in lines), lines[-5:]
    assert all(line["source"] == "postgresql" for line in lines)
    stream = EventStream(api, "/services/postgresql/logstream", lines=3)
    first = []
    for event in stream:
        if event["data"]:
            first.append(json.loads(event["data"]))
            if len(first) == 3:
                break
    stream.close()
    assert [line["message"] for line in first] == [line["message"] for line in lines[-3:]]


def test_memory_limit_of_a_container_is_the_engines(addons_berth):
    api = addons_berth.api
    r = api.post("/services/postgresql", json={"memory": 300 * 1024 * 1024})
    assert r.status_code == 202, r.text
    container = _engine_container(addons_berth, "postgresql")
    container.reload()
    assert container.attrs["HostConfig"]["Memory"] == 300 * 1024 * 1024
    assert api.get("/services/postgresql").json()["service"]["config"]["memory"] == 300 * 1024 * 1024
    assert api.get("/settings/platform_config").json()["postgresql"]["memory"] == 300 * 1024 * 1024

    r = api.post("/settings/platform_config", json={"postgresql": {"memory": 256 * 1024 * 1024,
                                                                   "memorySwap": 256 * 1024 * 1024}})
    assert r.status_code == 200, r.text
    container.reload()
    assert container.attrs["HostConfig"]["Memory"] == 256 * 1024 * 1024
    assert api.post("/services/postgresql", json={"memory": 1024}).status_code == 400  # too small to run
    assert api.post("/services/postgresql", json={"memory": "256M"}).status_code == 400


def test_killed_postgresql_is_reported_then_healed_by_the_health_monitor(addons_berth):
    api = addons_berth.api
    wait_status(api, "postgresql", "active", timeout=90)
    container = _engine_container(addons_berth, "postgresql")
    started = container.attrs["State"]["StartedAt"]
    container.kill()
    seen = api.get("/services/postgresql").json()["service"]
    healed_already = [e for e in events(api, "service.restart") if e["data"].get("id") == "postgresql"]
    # The health check runs every 10 s: it can only have beaten this first look by a hair.
    assert seen["status"] != "active" or healed_already, seen
    if seen["status"] != "active":
        assert seen["error"]
    deadline = time.time() + 60
    while not [e for e in events(api, "service.restart") if e["data"].get("id") == "postgresql"]:
        assert time.time() < deadline, "the health monitor did not restart the killed PostgreSQL"
        time.sleep(0.5)
    wait_status(api, "postgresql", "active", timeout=90)
    container.reload()
    assert container.attrs["State"]["Running"] and container.attrs["State"]["StartedAt"] != started


def test_restart_of_an_apps_redis(addons_berth):
    api, name = addons_berth.api, f"redis:{addons_berth.app_id}"
    container = _engine_container(addons_berth, f"redis-{addons_berth.app_id}")
    started = container.attrs["State"]["StartedAt"]
    assert api.post(f"/services/{name}/restart").status_code == 202
    wait_status(api, name, "active", timeout=90)
    container.reload()
    assert container.attrs["State"]["StartedAt"] != started
    assert [e for e in events(api, "service.restart") if e["data"].get("id") == name]
