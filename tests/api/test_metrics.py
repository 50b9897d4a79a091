"""GET /metrics on a server with two gunicorn workers: counts summed exactly across workers
(prometheus-client's multiprocess mode), task and log-stream metrics moving with real work, and
who may read it (admin token, a `metrics`-scope token that reads nothing else, the configured
bearer secret). Parsed with Prometheus' own text parser. App, backup and certificate metrics are
checked where apps run (tests/api/test_cli.py)."""
import os
import threading
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from support.harness import Api, BerthServer, activate
from support.task_queue import start_task, wait_task

SECRET = "metrics-secret-" + "x" * 24


@pytest.fixture(scope="module")
def server():
    berth = BerthServer(workers=2, env={"BERTH_METRICS_TOKEN": SECRET, "BERTH_RATE_LIMIT": "0"}).start()
    try:
        yield berth
    finally:
        berth.cleanup()


@pytest.fixture(scope="module")
def owner(server):
    return activate(server)


def scrape(api):
    r = api.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain")
    return [s for family in text_string_to_metric_families(r.text) for s in family.samples]


def value(samples, name, **labels):
    found = [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    return sum(found) if found else 0


def test_request_counts_are_exact_across_two_workers(server, owner):
    before = value(scrape(owner), "berth_http_requests_total", operation="handlers.profile.get_profile", status="200")
    for _ in range(60):
        assert owner.get("/profile").status_code == 200
    for _ in range(4):  # whichever worker answers the scrape, the sum is the same
        samples = scrape(owner)
        assert value(samples, "berth_http_requests_total", operation="handlers.profile.get_profile",
                     method="GET", status="200") == before + 60
        assert value(samples, "berth_http_request_duration_seconds_count",
                     operation="handlers.profile.get_profile", status="200") == before + 60
    writers = {name.rsplit("_", 1)[-1] for name in os.listdir(os.path.join(server.data_dir, "run", "metrics"))}
    assert len(writers) >= 2, writers  # both workers recorded samples


def test_failed_logins_and_tasks_move_their_counters(server, owner):
    anon = Api(server.api)
    before = value(scrape(owner), "berth_http_requests_total", operation="handlers.cloudron.login", status="401")
    for _ in range(3):
        assert anon.post("/cloudron/login", json={"username": "owner", "password": "wrong"}).status_code == 401
    samples = scrape(owner)
    assert value(samples, "berth_http_requests_total", operation="handlers.cloudron.login", status="401") == before + 3

    ok = start_task(server, "steps", type="update", args={"count": 2, "delay": 0.05})
    bad = start_task(server, "failing", type="update")
    wait_task(owner, ok)
    wait_task(owner, bad)
    samples = scrape(owner)
    assert value(samples, "berth_tasks", type="update", outcome="success") >= 1
    assert value(samples, "berth_tasks", type="update", outcome="failed") >= 1
    assert value(samples, "berth_task_duration_seconds_count", type="update", outcome="success") >= 1
    assert value(samples, "berth_task_duration_seconds_sum", type="update", outcome="success") > 0
    assert value(samples, "berth_db_query_duration_seconds_count") > 0
    assert value(samples, "berth_process_resident_memory_bytes") > 10 * 1024 * 1024
    assert value(samples, "berth_processes") >= 3  # master and two workers


def test_open_log_streams_are_counted_and_released(server, owner):
    task_id = start_task(server, "sleeper", type="update", args={"seconds": 30})
    stop = threading.Event()

    def listen():
        with requests.get(f"{server.api}/tasks/{task_id}/logstream", headers={
                "Authorization": f"Bearer {owner.token}", "Accept": "text/event-stream"}, stream=True, timeout=30) as r:
            for _ in r.iter_lines():
                if stop.is_set():
                    return

    listeners = [threading.Thread(target=listen, daemon=True) for _ in range(3)]
    for t in listeners:
        t.start()
    deadline = time.time() + 10
    while value(scrape(owner), "berth_log_stream_clients") < 3:
        assert time.time() < deadline, "streams not counted"
        time.sleep(0.2)
    stop.set()
    assert owner.post(f"/tasks/{task_id}/stop").status_code in (200, 202, 204)
    for t in listeners:
        t.join(15)
    deadline = time.time() + 10
    while value(scrape(owner), "berth_log_stream_clients") != 0:
        assert time.time() < deadline, "streams still counted after they ended"
        time.sleep(0.2)


def test_who_may_read_the_metrics(server, owner):
    anon = Api(server.api)
    assert anon.get("/metrics").status_code == 401
    assert Api(server.api, SECRET).get("/metrics").status_code == 200
    assert Api(server.api, SECRET[:-1] + "y").get("/metrics").status_code == 401
    assert Api(server.api, SECRET).get("/profile").status_code == 401  # the secret is no API token

    r = owner.post("/tokens", json={"name": "prometheus", "scope": {"metrics": "r"}})
    assert r.status_code == 201, r.text
    scraper = Api(server.api, r.json()["accessToken"])
    assert scraper.get("/metrics").status_code == 200
    refused = scraper.get("/profile")
    assert refused.status_code == 403 and "scope" in refused.json()["message"]
    assert scraper.post("/tokens", json={"name": "x"}).status_code == 403
    assert owner.post("/tokens", json={"name": "bad", "scope": {"metrics": "rw"}}).status_code == 400

    r = owner.post("/users", json={"email": "plain@example.com", "username": "plain", "password": "Plain-pass-123"})
    assert r.status_code == 201, r.text
    login = anon.post("/cloudron/login", json={"username": "plain", "password": "Plain-pass-123"})
    denied = Api(server.api, login.json()["token"]).get("/metrics")
    assert denied.status_code == 403 and "needs one of: owner, admin" in denied.json()["message"]
