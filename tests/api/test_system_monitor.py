"""/cloudron/disks, /cloudron/memory, /cloudron/graphs and Berth's own logs over HTTP against one
real server (graphs collector every second, an app installed from the test image): the figures
are the machine's (compared with psutil here), system and per-app points appear once the
collector ran, and the box and nginx logs download and stream as their files grow."""
import json
import os
import threading
import time

import psutil
import pytest
import requests

from support.apps_env import _berth

pytestmark = pytest.mark.usefixtures("parts")


@pytest.fixture(scope="module")
def env(parts, tmp_path_factory):
    berth = _berth(parts, tmp_path_factory)
    berth.env["BERTH_GRAPHS_INTERVAL"] = "1"
    try:
        berth.start()
        berth.app_id = berth.install("graphs")["id"]
        yield berth
    finally:
        berth.close()


@pytest.fixture
def api(env):
    return env.api


def test_memory_is_the_machines(api):
    r = api.get("/cloudron/memory")
    assert r.status_code == 200, r.text
    assert r.json() == {"memory": psutil.virtual_memory().total, "swap": psutil.swap_memory().total}


def test_disks_are_the_filesystems_berth_and_docker_live_on(env, api):
    r = api.get("/cloudron/disks")
    assert r.status_code == 200, r.text
    body = r.json()
    by_fs = {disk["filesystem"]: disk for disk in body["disks"]}
    box = by_fs[body["boxDataDisk"]]
    assert {"id": "box", "path": env.data_dir} in box["contains"]
    measured = psutil.disk_usage(env.data_dir)
    assert box["size"] == measured.total
    assert abs(box["used"] - measured.used) < measured.total * 0.02  # other writers on this machine
    assert abs(box["available"] - measured.free) < measured.total * 0.02
    assert body["appsDataDisk"] == body["boxDataDisk"]  # apps' data is under the data dir here
    assert body["dockerDataDisk"] in by_fs and body["rootDisk"] in by_fs
    places = [place["id"] for disk in body["disks"] for place in disk["contains"]]
    assert sorted(places) == ["apps", "box", "docker", "root"]  # each place once, on one filesystem
    assert len(by_fs) == len(body["disks"])  # a device mounted twice is one entry


def _graphs(api, *targets, **params):
    r = api.get("/cloudron/graphs", params={"target": list(targets), "noNullPoints": "true", **params})
    assert r.status_code == 200, r.text
    return {series["target"]: series["datapoints"] for series in r.json()}


def test_graphs_show_system_and_app_points_after_the_collector_ran(env, api):
    app = env.app_id
    targets = ["cpu", "memory", "system.network", "system.disk.used", f"app.{app}.memory", f"app.{app}.cpu",
               f"app.{app}.network"]
    deadline = time.time() + 30
    while True:
        series = _graphs(api, *targets, **{"from": "-10min"})
        if all(series[t] for t in targets):
            break
        assert time.time() < deadline, f"no points for some targets after 30 s: {series}"
        time.sleep(0.5)
    assert list(series) == targets  # one answer per target, in order, named as asked
    now = time.time()
    for target in targets:
        for value, stamp in series[target]:
            assert value >= 0 and stamp % 60 == 0 and now - 11 * 60 <= stamp <= now  # minute points
    assert 0 < series["memory"][-1][0] <= psutil.virtual_memory().total
    assert 0 <= series["cpu"][-1][0] <= 100 and 0 <= series[f"app.{app}.cpu"][-1][0] <= 100
    assert 0 < series[f"app.{app}.memory"][-1][0] < series["memory"][-1][0]  # the container's own
    used = psutil.disk_usage(env.data_dir).used
    assert abs(series["system.disk.used"][-1][0] - used) < psutil.disk_usage(env.data_dir).total * 0.02
    # without noNullPoints every minute of the range is there, empty ones null
    r = api.get("/cloudron/graphs", params={"target": "cpu", "from": "-10min"})
    assert r.status_code == 200 and len(r.json()[0]["datapoints"]) == 11
    # a range reaching back further than a day is answered per hour
    week = _graphs(api, "memory", **{"from": "-7d", "until": "now"})["memory"]
    assert week and all(stamp % 3600 == 0 for _, stamp in week)
    # an app without samples (unknown id) has no points, not an error
    assert _graphs(api, "app.nosuchapp.cpu")["app.nosuchapp.cpu"] == []


@pytest.mark.parametrize(("params", "field"), [
    ({"target": "load"}, "target"), ({"target": "app.x.disk.used"}, "target"), ({}, "target"),
    ({"target": "cpu", "from": "yesterday"}, "from"), ({"target": "cpu", "until": "-1h", "from": "now"}, "from"),
    ({"target": "cpu", "until": "soon"}, "until"), ({"target": "cpu", "noNullPoints": "maybe"}, "noNullPoints"),
])
def test_graph_queries_are_validated(api, params, field):
    r = api.get("/cloudron/graphs", params=params)
    assert r.status_code == 400, r.text
    assert field in r.json()["message"]


class EventStream:
    """A minimal EventSource client reading `data` events in a thread until one matches."""

    def __init__(self, api, path, **params):
        headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {api.token}"}
        self.response = requests.get(api.base + path, headers=headers, params=params, stream=True, timeout=30)
        self.events = []

    def read_until(self, text, timeout=15):
        def read():
            buffer = ""
            try:
                for chunk in self.response.iter_content(chunk_size=None):
                    buffer += chunk.decode()
                    while "\n\n" in buffer:
                        block, buffer = buffer.split("\n\n", 1)
                        fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
                        if "data" in fields:
                            self.events.append(fields)
                            if text in fields["data"]:
                                return
            except requests.RequestException:
                pass
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        return reader

    def close(self):
        self.response.close()


def test_box_log_downloads_and_streams_berths_own_lines(env, api):
    r = api.get("/cloudron/logs/box", params={"lines": 5})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/x-logs")
    lines = [json.loads(text) for text in r.text.splitlines()]
    assert 0 < len(lines) <= 5 and all(line["source"] == "box" for line in lines)
    assert all(abs(line["realtimeTimestamp"] / 1e6 - time.time()) < 3600 for line in lines)
    everything = api.get("/cloudron/logs/box", params={"lines": -1}).text
    assert "INFO berth: server process" in everything  # written by the server itself at start
    plain = api.get("/cloudron/logs/box", params={"lines": 1, "format": "plain"}).text
    assert plain.count("\n") >= 1 and plain[:4].isdigit()  # the stored line: `<ISO time> ...`

    stream = EventStream(api, "/cloudron/logstream/box", lines=0)
    assert stream.response.status_code == 200, stream.response.text
    assert stream.response.headers["Content-Type"].startswith("text/event-stream")
    reader = stream.read_until("system monitor stream probe")
    time.sleep(0.5)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    with open(os.path.join(env.data_dir, "logs", "box.log"), "a") as f:
        f.write(f"{stamp} INFO berth.test: system monitor stream probe\n")
    reader.join(15)
    stream.close()
    messages = [json.loads(event["data"])["message"] for event in stream.events]
    assert "INFO berth.test: system monitor stream probe" in messages, messages
    assert not any("server process" in m for m in messages)  # lines=0: nothing replayed
    ids = [int(event["id"]) for event in stream.events]
    assert ids == sorted(set(ids))
    assert api.get("/cloudron/logstream/box").status_code == 400  # not an EventSource request


def test_nginx_log_has_the_error_and_access_lines(env, api):
    error_log = os.path.join(env.data_dir, "nginx", "logs", "error.log")
    with open(error_log, "a") as f:
        f.write(time.strftime("%Y/%m/%d %H:%M:%S") + " [warn] 4242#4242: system monitor test line\n")
    r = api.get("/cloudron/logs/nginx", params={"lines": 50})
    assert r.status_code == 200, r.text
    lines = [json.loads(text) for text in r.text.splitlines()]
    mine = [line for line in lines if "system monitor test line" in line["message"]]
    assert len(mine) == 1 and mine[0]["source"] == "nginx"
    assert abs(mine[0]["realtimeTimestamp"] / 1e6 - time.time()) < 10  # nginx's local time, converted

    stream = EventStream(api, "/cloudron/logstream/nginx", lines=1)
    assert stream.response.status_code == 200, stream.response.text
    reader = stream.read_until("/system-monitor-probe")
    time.sleep(0.5)
    env.curl("graphs.example.test", "/system-monitor-probe")  # nginx writes its access log line
    reader.join(15)
    stream.close()
    assert any("/system-monitor-probe" in event["data"] for event in stream.events), stream.events


def test_unknown_units_are_404(api):
    for unit in ("nosuch", "crash-1", "Box"):
        r = api.get(f"/cloudron/logs/{unit}")
        assert r.status_code == 404, r.text
        headers = {"Accept": "text/event-stream"}
        assert api.get(f"/cloudron/logstream/{unit}", headers=headers).status_code == 404
    assert api.get("/cloudron/logs/crash").status_code == 200  # Berth's crash reports: a unit, maybe empty
