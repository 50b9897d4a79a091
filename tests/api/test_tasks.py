"""The task engine through the HTTP API of real servers: progress, logs, EventSource streams,
stop/timeout/crash outcomes, concurrency rules, crash recovery, schedules across processes.

No API route starts an arbitrary task, so tests queue real bodies (tests/test_task_bodies.py)
with the domain call `tasks.start(...)` against the server's database, as any Berth process
may; the server's runner claims them from the table like any other task.
"""
import os
import threading
import time

import pytest
import requests

from support.harness import Api, BerthServer, activate
from support.task_queue import BODIES, Db, finished, start_task, wait_task

# ---------------------------------------------------------------------------------------------
# helpers

def login(server):
    r = Api(server.api).post("/cloudron/login", json={"username": "owner", "password": "Owner-pass-1"})
    assert r.status_code == 200, r.text
    return Api(server.api, r.json()["token"])


class EventStream:
    """A minimal EventSource client: yields {id, data, comment, at} per event block."""

    def __init__(self, api, path, last_event_id=None, **params):
        headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {api.token}"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        self.response = requests.get(api.base + path, headers=headers, params=params, stream=True,
                                     timeout=30)
        self._chunks = self.response.iter_content(chunk_size=None)
        self._buffer = ""

    def __iter__(self):
        while True:
            while "\n\n" not in self._buffer:
                chunk = next(self._chunks, None)
                if chunk is None:
                    return
                self._buffer += chunk.decode()
            block, self._buffer = self._buffer.split("\n\n", 1)
            event = {"at": time.monotonic(), "comment": None, "id": None, "data": None}
            for line in block.split("\n"):
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "":
                    event["comment"] = value
                elif field in ("id", "data", "retry"):
                    event[field] = value
            yield event

    def close(self):
        self.response.close()


def _collect(stream, events):
    try:
        events.extend(stream)
    except (requests.RequestException, AttributeError, ValueError):
        pass  # closed under the reader at teardown


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is dead too
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def body_pid(api, task_id):
    """The task process's pid, which the sleeper body prints first thing."""
    deadline = time.time() + 10
    while time.time() < deadline:
        text = api.get(f"/tasks/{task_id}/logs", params={"lines": -1, "format": "plain"}).text
        for line in text.splitlines():
            if " pid " in line:
                return int(line.rsplit(" ", 1)[1])
        time.sleep(0.05)
    raise AssertionError("the body never printed its pid")


# ---------------------------------------------------------------------------------------------
# An idle stream opened at the start of the module and checked at its end: heartbeats come
# every 15 s, so this watches one arrive while the other tests run.

@pytest.fixture(scope="module")
def idle_stream():
    server = BerthServer().start()
    api = activate(server)
    # Long enough to outlast the tests run before the heartbeat test on a busy machine (the
    # heartbeat test stops it).
    task_id = start_task(server, "sleeper", args={"seconds": 900})
    wait_task(api, task_id, lambda t: t["percent"] == 10)
    stream = EventStream(api, f"/tasks/{task_id}/logstream", lines=-1)
    events = []
    reader = threading.Thread(target=_collect, args=(stream, events), daemon=True)
    opened = time.monotonic()
    reader.start()
    yield {"server": server, "api": api, "task_id": task_id, "events": events, "opened": opened,
           "stream": stream, "reader": reader}
    stream.close()
    api.post(f"/tasks/{task_id}/stop")   # when the heartbeat test did not run to its end
    server.cleanup()


# ---------------------------------------------------------------------------------------------
# progress, listing, logs

def test_progress_is_seen_changing(berth, owner, idle_stream):
    task_id = start_task(berth, "steps", args={"count": 6, "delay": 0.4})
    seen = []
    task = wait_task(owner, task_id, lambda t: seen.append((t["percent"], t["message"])) or finished(t))
    running = {p for p, m in seen[:-1] if m.startswith("step")}
    assert len(running) >= 3, seen  # a client polling sees the percent move
    assert any(m == "step 3 of 6" for _, m in seen), seen
    assert task["success"] is True and task["error"] is None
    assert task["percent"] == 100 and task["result"] == {"steps": 6}
    assert task["id"] == str(task_id) and task["type"] == "update"
    assert task["creationTime"].endswith("Z") and task["ts"] >= task["creationTime"]


def test_list_get_filter_and_access(berth, owner, make_user):
    ids = [start_task(berth, "echo", type="syncExternalLdap", args={"value": i}) for i in range(3)]
    for task_id in ids:
        assert wait_task(owner, task_id)["success"]
    r = owner.get("/tasks", params={"type": "syncExternalLdap", "per_page": 100})
    assert r.status_code == 200
    listed = [t for t in r.json()["tasks"] if int(t["id"]) in ids]
    assert [int(t["id"]) for t in listed] == sorted(ids, reverse=True)  # newest first
    assert [t["result"] for t in listed] == [2, 1, 0]
    assert all(t["type"] == "syncExternalLdap" for t in r.json()["tasks"])
    page = owner.get("/tasks", params={"type": "syncExternalLdap", "per_page": 2, "page": 1}).json()
    assert len(page["tasks"]) == 2 and int(page["tasks"][0]["id"]) >= ids[-1]

    assert owner.get("/tasks/999999").status_code == 404
    assert owner.get("/tasks/999999/logs").status_code == 404
    assert owner.post("/tasks/999999/stop").status_code == 404
    r = owner.get("/tasks", params={"type": "bogus"})
    assert r.status_code == 400 and "type" in r.json()["message"]
    assert Api(berth.api).get("/tasks").status_code == 401
    _, user = make_user("user")
    assert user.get("/tasks").status_code == 403
    assert user.get(f"/tasks/{ids[0]}").status_code == 403
    assert user.post(f"/tasks/{ids[0]}/stop").status_code == 403


def test_logs_download(berth, owner):
    task_id = start_task(berth, "ticker", args={"lines": 4, "interval": 0})
    wait_task(owner, task_id)
    r = owner.get(f"/tasks/{task_id}/logs", params={"lines": -1, "format": "plain"})
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/x-logs")
    assert r.headers["Content-Disposition"] == 'attachment; filename="log.txt"'
    lines = r.text.splitlines()
    messages = [line.split(" ", 1)[1] for line in lines]
    # Printed lines reach the log through a pipe, task.log lines directly: with no pause between
    # them the two sources may interleave, so compare the lines, not their order.
    assert sorted(m for m in messages if m.startswith("tick")) == ["tick 0", "tick 1", "tick 2", "tick 3"]
    assert all(line[:4].isdigit() and line.split(" ", 1)[0].endswith("Z") for line in lines)

    import json
    # The task process records its outcome, then logs "task finished"; its printed lines may
    # still be on their way through the pipe: which line comes last is not fixed.
    deadline = time.time() + 10
    while "task finished" not in owner.get(f"/tasks/{task_id}/logs", params={"lines": -1}).text:
        assert time.time() < deadline
        time.sleep(0.05)
    r = owner.get(f"/tasks/{task_id}/logs", params={"lines": 2})  # format=json by default
    objects = [json.loads(line) for line in r.text.splitlines()]
    assert len(objects) == 2
    assert all(o["source"] == str(task_id) and isinstance(o["realtimeTimestamp"], int) for o in objects)
    assert objects[0]["realtimeTimestamp"] < objects[1]["realtimeTimestamp"]
    assert owner.get(f"/tasks/{task_id}/logs", params={"lines": -2}).status_code == 400
    assert owner.get(f"/tasks/{task_id}/logs", params={"format": "xml"}).status_code == 400


# ---------------------------------------------------------------------------------------------
# logstream

def test_logstream_delivers_live_and_resumes_with_last_event_id(berth, owner):
    task_id = start_task(berth, "ticker", args={"lines": 12, "interval": 0.25})
    wait_task(owner, task_id, lambda t: t["active"])
    stream = EventStream(owner, f"/tasks/{task_id}/logstream", lines=-1)
    assert stream.response.status_code == 200
    assert stream.response.headers["Content-Type"].startswith("text/event-stream")
    received, first = [], None
    for event in stream:
        if first is None:
            first = event
            assert event["retry"] == "3000"
        if event["data"]:
            received.append(event)
            if '"tick 3"' in event["data"]:
                break
    # Lines arrive while the task is still writing them, not all at the end.
    assert owner.get(f"/tasks/{task_id}").json()["active"] is True
    stream.close()

    import json
    last_id = received[-1]["id"]
    resumed = EventStream(owner, f"/tasks/{task_id}/logstream", last_event_id=last_id, lines=1)
    rest = [e for e in resumed if e["data"]]  # runs until the stream ends with the task
    assert finished(owner.get(f"/tasks/{task_id}").json())
    events = received + rest
    data = [json.loads(e["data"]) for e in events]
    ticks = [d["message"] for d in data if d["message"].startswith("tick")]
    assert ticks == [f"tick {i}" for i in range(12)]  # no gap, no duplicate across the reconnect
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(set(ids)) and ids == [d["realtimeTimestamp"] for d in data]
    assert all(d["source"] == str(task_id) for d in data)
    assert data[-1]["message"] == "task finished"
    # Reconnecting after the end with the last id: 204 tells EventSource to stop retrying.
    r = requests.get(owner.base + f"/tasks/{task_id}/logstream", timeout=10, headers={
        "Accept": "text/event-stream", "Authorization": f"Bearer {owner.token}",
        "Last-Event-ID": str(ids[-1])})
    assert r.status_code == 204


def test_logstream_of_a_finished_task_plain_and_errors(berth, owner, make_user):
    task_id = start_task(berth, "ticker", args={"lines": 3, "interval": 0})
    wait_task(owner, task_id)
    stream = EventStream(owner, f"/tasks/{task_id}/logstream", lines=2, format="plain")
    data = [e["data"] for e in stream if e["data"]]
    assert len(data) == 2 and data[-1].endswith(" task finished") and data[-1][:4].isdigit()

    r = owner.get(f"/tasks/{task_id}/logstream")  # no Accept: text/event-stream
    assert r.status_code == 400 and "text/event-stream" in r.json()["message"]
    def sse():
        return {"Accept": "text/event-stream"}  # fresh each time: Api adds its token to it
    assert owner.get("/tasks/999999/logstream", headers=sse()).status_code == 404
    assert owner.get(f"/tasks/{task_id}/logstream", headers=sse(), params={"lines": "x"}).status_code == 400
    assert Api(berth.api).get(f"/tasks/{task_id}/logstream", headers=sse()).status_code == 401
    _, user = make_user("user")
    assert user.get(f"/tasks/{task_id}/logstream", headers=sse()).status_code == 403


# ---------------------------------------------------------------------------------------------
# stop, timeout, failures

def test_stop_ends_tasks_stuck_in_blocking_calls(berth, owner):
    sleeping = start_task(berth, "sleeper", args={"seconds": 120})
    reading = start_task(berth, "blocking_read")
    stubborn = start_task(berth, "sleeper", args={"seconds": 120, "ignore_sigterm": True})
    for task_id in (sleeping, reading, stubborn):
        wait_task(owner, task_id, lambda t: t["active"] and t["percent"] in (5, 10))
    pids = {task_id: body_pid(owner, task_id) for task_id in (sleeping, stubborn)}
    for task_id in (sleeping, reading, stubborn):
        assert owner.post(f"/tasks/{task_id}/stop").status_code == 204
    for task_id in (sleeping, reading, stubborn):
        task = wait_task(owner, task_id, timeout=20)
        assert task["error"]["code"] == "stopped", task
        assert task["success"] is False and task["percent"] == 100
    for pid in pids.values():
        assert not pid_alive(pid)
    log = owner.get(f"/tasks/{stubborn}/logs", params={"lines": -1, "format": "plain"}).text
    assert "SIGKILL" in log  # it ignored SIGTERM: the grace period ran out
    r = owner.post(f"/tasks/{sleeping}/stop")
    assert r.status_code == 409 and "not active" in r.json()["message"]


def test_timeout(berth, owner):
    with Db(berth):
        import tasks
        task_id = tasks.start("update", f"{BODIES}.sleeper", {"seconds": 60}, timeout=1)
    task = wait_task(owner, task_id, timeout=15)
    assert task["error"]["code"] == "timeout", task
    assert "1 seconds" in task["error"]["message"]


def test_failing_and_crashing_bodies(berth, owner):
    failing = start_task(berth, "failing", args={"message": "disk on fire"})
    crashing = start_task(berth, "crashing")
    task = wait_task(owner, failing)
    assert task["success"] is False
    assert task["error"] == {"message": "disk on fire", "code": "RuntimeError"}
    log = owner.get(f"/tasks/{failing}/logs", params={"lines": -1, "format": "plain"}).text
    assert "Traceback" in log and "disk on fire" in log
    task = wait_task(owner, crashing)
    assert task["error"]["code"] == "crashed" and "SIGKILL" in task["error"]["message"], task
    assert owner.get("/cloudron/status").status_code == 200


# ---------------------------------------------------------------------------------------------
# concurrency rules

def test_one_task_per_app_one_backup_at_a_time(berth, owner):
    app_first = start_task(berth, "sleeper", args={"seconds": 1.5}, app_id="app-1")
    app_second = start_task(berth, "echo", args={"value": "second"}, app_id="app-1")
    backup_first = start_task(berth, "sleeper", type="backup", args={"seconds": 1.5})
    backup_second = start_task(berth, "echo", type="backup", args={"value": "b2"})
    other = start_task(berth, "echo", type="renewcerts", args={"value": "free"})
    ids = (app_first, app_second, backup_first, backup_second, other)
    snapshots = []
    deadline = time.time() + 30
    while time.time() < deadline:
        snap = {i: owner.get(f"/tasks/{i}").json() for i in ids}
        snapshots.append(snap)
        if all(finished(t) for t in snap.values()):
            break
        time.sleep(0.05)
    for first, second in ((app_first, app_second), (backup_first, backup_second)):
        assert not any(s[first]["active"] and s[second]["active"] for s in snapshots)
        assert any(s[first]["active"] and s[second]["pending"] for s in snapshots)
    # unrelated work runs alongside
    assert any(finished(s[other]) and s[app_first]["active"] for s in snapshots)
    assert all(snapshots[-1][i]["success"] for i in ids)


def test_stop_pending_task(berth, owner):
    blocker = start_task(berth, "sleeper", args={"seconds": 60}, app_id="app-2")
    queued = start_task(berth, "echo", args={"value": 1}, app_id="app-2")
    wait_task(owner, blocker, lambda t: t["active"])
    assert owner.get(f"/tasks/{queued}").json()["pending"] is True
    assert owner.post(f"/tasks/{queued}/stop").status_code == 204
    task = owner.get(f"/tasks/{queued}").json()
    assert finished(task) and task["error"]["code"] == "stopped"
    assert owner.post(f"/tasks/{blocker}/stop").status_code == 204
    assert wait_task(owner, blocker)["error"]["code"] == "stopped"


def test_parallel_limit(berth, owner):
    ids = [start_task(berth, "sleeper", args={"seconds": 30}) for _ in range(6)]
    seen_full = False
    deadline = time.time() + 20
    while time.time() < deadline and not seen_full:
        tasks = [owner.get(f"/tasks/{i}").json() for i in ids]
        active = sum(t["active"] for t in tasks)
        assert active <= 5
        seen_full = active == 5 and sum(t["pending"] for t in tasks) == 1
        time.sleep(0.05)
    assert seen_full
    for task_id in ids:
        owner.post(f"/tasks/{task_id}/stop")
    for task_id in ids:
        wait_task(owner, task_id)


# ---------------------------------------------------------------------------------------------
# server stop and crash

def test_server_stop_and_sigkill_leave_no_task_active():
    first = BerthServer().start()
    data_dir = first.data_dir
    try:
        api = activate(first)
        interrupted = start_task(first, "sleeper", args={"seconds": 120})
        wait_task(api, interrupted, lambda t: t["percent"] == 10)
        stream = EventStream(api, f"/tasks/{interrupted}/logstream", lines=1)
        reader = threading.Thread(target=_collect, args=(stream, []), daemon=True)
        reader.start()
        began = time.monotonic()
        first.stop()  # SIGTERM: open streams must not hold up the graceful shutdown
        assert time.monotonic() - began < 8
        reader.join(5)
        assert not reader.is_alive()

        second = BerthServer(data_dir=data_dir).start()
        api = login(second)
        task = api.get(f"/tasks/{interrupted}").json()
        assert task["error"]["code"] == "crashed" and not task["active"], task

        killed = start_task(second, "sleeper", args={"seconds": 120}, app_id="app-k")
        queued = start_task(second, "echo", args={"value": "after"}, app_id="app-k")
        wait_task(api, killed, lambda t: t["percent"] == 10)
        pid = body_pid(api, killed)
        second.kill()  # SIGKILL the whole server mid-task
        deadline = time.time() + 5
        while pid_alive(pid) and time.time() < deadline:
            time.sleep(0.05)
        assert not pid_alive(pid)  # the task process died with its server

        third = BerthServer(data_dir=data_dir).start()
        api = login(third)
        assert api.get("/cloudron/status").status_code == 200
        # The killed worker may take a moment to vanish; its runner is then found dead (at start,
        # or by the recovery check a few seconds later).
        task = wait_task(api, killed, lambda t: t["error"] is not None, timeout=15)
        assert task["error"]["code"] == "crashed" and not task["active"], task
        assert "stopped while the task was running" in task["error"]["message"]
        after = wait_task(api, queued)  # queued work survives the crash and runs
        assert after["success"] and after["result"] == "after"
        third.stop()
    finally:
        first.cleanup()


# ---------------------------------------------------------------------------------------------
# schedules and several processes on one PostgreSQL database

def test_schedule_fires_once_across_two_servers(postgres):
    """Server one (1 worker) and server two (2 workers) share a database: three schedulers."""
    url = postgres.new_database()
    one = BerthServer(database_url=url).start()
    two = None
    try:
        api_one = activate(one)
        # a task claimed by server one, stopped through server two: stop crosses processes
        sleeping = start_task(one, "sleeper", args={"seconds": 120})
        wait_task(api_one, sleeping, lambda t: t["percent"] == 10)
        from tasks import schedules
        with Db(one):
            schedules.save("test-every-second", "* * * * * *", f"{BODIES}.record_fire",
                           {"type": "syncDnsRecords"})
        two = BerthServer(database_url=url, workers=2).start()  # loads the stored schedule
        api_two = login(two)
        assert api_two.post(f"/tasks/{sleeping}/stop").status_code == 204
        assert wait_task(api_one, sleeping)["error"]["code"] == "stopped"
        time.sleep(3)
        one.stop()  # the schedule goes on firing from server two alone
        time.sleep(2)
        with Db(one):
            schedules.save("test-every-second", "never", f"{BODIES}.record_fire",
                           {"type": "syncDnsRecords"})
        time.sleep(3)  # both servers' sync period, then no more firings

        def fired():
            listed = api_two.get("/tasks", params={"type": "syncDnsRecords", "per_page": 100}).json()
            return [wait_task(api_two, t["id"]) for t in listed["tasks"]]
        done = fired()
        # A firing whose task server one was still starting when it shut down ends `crashed`
        # (no result); every other firing's task carries its planned fire time.
        crashed = [t for t in done if t["result"] is None]
        assert all(t["error"]["code"] == "crashed" for t in crashed), crashed
        times = sorted(t["result"] for t in done if t["result"] is not None)
        assert len(times) >= 5, times
        assert len(set(times)) == len(times), times  # never twice for one fire time
        missing = sum(b - a - 1 for a, b in zip(times, times[1:], strict=False))
        assert missing <= len(crashed), (times, crashed)  # and none missed
        time.sleep(1.5)
        assert len(fired()) == len(done)  # 'never' disabled it
    finally:
        if two is not None:
            two.cleanup()
        one.cleanup()


def test_schedule_patterns():
    from core.errors import BadRequest
    from tasks import schedules
    for bad in ("* * *", "61 * * * * *", "0 0 0 * * 9", "whenever"):
        with pytest.raises(BadRequest) as info:
            schedules.save("bad", bad, f"{BODIES}.record_fire")  # refused before any database use
        assert info.value.field == "pattern"
    # weekday numbers are cron's (0 and 7 = Sunday), not APScheduler's (0 = Monday)
    import datetime
    trigger = schedules.trigger("00 30 04 * * 0")
    sunday = datetime.datetime(2024, 6, 1, tzinfo=datetime.timezone.utc)  # a Saturday
    assert trigger.get_next_fire_time(None, sunday).isoformat() == "2024-06-02T04:30:00+00:00"
    assert schedules.trigger("never") is None


# ---------------------------------------------------------------------------------------------

def test_idle_stream_gets_heartbeats(idle_stream):
    """Uses the stream opened by the first test of the module."""
    wait = idle_stream["opened"] + 16.5 - time.monotonic()
    if wait > 0:
        time.sleep(wait)
    events = list(idle_stream["events"])
    assert idle_stream["reader"].is_alive()  # still open, the task still running
    assert any(e["comment"] == "heartbeat" for e in events), events
    last_data = max(e["at"] for e in events if e["data"])
    beat = min(e["at"] for e in events if e["comment"] == "heartbeat")
    assert 14 <= beat - last_data <= 16.5
    api = idle_stream["api"]
    assert api.post(f"/tasks/{idle_stream['task_id']}/stop").status_code == 204
    idle_stream["reader"].join(10)
    assert not idle_stream["reader"].is_alive()  # the stream ended with the task
