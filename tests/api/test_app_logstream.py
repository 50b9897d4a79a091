"""App log streams share ONE engine log follower per app (log_streams.stream_follower): two
clients of one app receive the same new line with the same id while the server follows the
engine's log once (berth_log_stream_followers{kind="engine"}), a client that reconnects with
Last-Event-ID gets exactly the lines it missed, a restarted container is followed again without
the clients reconnecting, and the follower stops when its last client leaves. Lines are written
into the real container's output (its PID 1's stdout) with `docker exec`."""
import json
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from support.apps_env import apps_berth, unique


@pytest.fixture(scope="module")
def apps(parts, tmp_path_factory):
    with apps_berth(parts, tmp_path_factory) as env:
        yield env


class Client:
    """One EventSource client: (id, data) per event, read as they come."""

    def __init__(self, apps, app_id, last_event_id=None, lines=0):
        headers = {"Authorization": f"Bearer {apps.api.token}", "Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        self.response = requests.get(f"{apps.api.base}/apps/{app_id}/logstream", params={"lines": lines},
                                     headers=headers, stream=True, timeout=30)
        assert self.response.status_code == 200, self.response.text
        self._lines = self.response.iter_lines(decode_unicode=True)
        self.events = []

    def until(self, message=None, count=None):
        """Events up to and including the first whose message is `message` (or the next `count`)."""
        start, event = len(self.events), {}
        for raw in self._lines:
            if raw.startswith("id:"):
                event["id"] = int(raw[3:].strip())
            elif raw.startswith("data:"):
                event["data"] = json.loads(raw[5:].strip())
            elif raw == "" and "data" in event:
                self.events.append((event["id"], event["data"]["message"]))
                event = {}
                if self.events[-1][1] == message or len(self.events) - start == count:
                    return self.events[start:]
        raise AssertionError(f"stream ended before {message!r}: {self.events[start:]}")

    def close(self):
        self.response.close()


def write_line(apps, app_id, text):
    """A line in the app's log: written to the container's stdout, stamped by the engine."""
    container = apps.docker.containers.get(apps.container(app_id)["Id"])
    code, out = container.exec_run(["sh", "-c", f"echo '{text}' > /proc/1/fd/1"])
    assert code == 0, out


def gauge(apps, name, **labels):
    r = apps.api.get("/metrics")
    assert r.status_code == 200, r.text
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0


def wait_gauge(apps, name, expected, **labels):
    deadline = time.time() + 10
    while (value := gauge(apps, name, **labels)) != expected:
        assert time.time() < deadline, f"{name}{labels} is {value}, expected {expected}"
        time.sleep(0.2)


def test_two_clients_share_one_engine_follower_and_a_resume_gets_exactly_the_missed_lines(apps):
    app_id = apps.install(unique("stream"))["id"]
    first, second = Client(apps, app_id), Client(apps, app_id)
    try:
        wait_gauge(apps, "berth_log_stream_clients", 2)
        assert gauge(apps, "berth_log_stream_followers", kind="engine") == 1

        write_line(apps, app_id, "shared-1")
        seen_first, seen_second = first.until("shared-1"), second.until("shared-1")
        assert seen_first[-1] == seen_second[-1]  # the same line with the same id
        resume_from = seen_second[-1][0]

        # The second client leaves; lines go on (with whatever the app logs in between).
        second.close()
        write_line(apps, app_id, "missed-2")
        write_line(apps, app_id, "missed-3")
        missed = first.until("missed-3")
        assert [m for _, m in missed if m.startswith("missed-")] == ["missed-2", "missed-3"]

        # Reconnecting with Last-Event-ID: exactly the lines after that id, nothing before, no gap.
        second = Client(apps, app_id, last_event_id=resume_from, lines=10)
        assert second.until("missed-3") == missed
        assert gauge(apps, "berth_log_stream_followers", kind="engine") == 1

        # A restart stops the container (its engine log stream ends): the same follower picks the
        # container up again and both clients go on receiving, with ids still increasing.
        task = apps.run(apps.api.post(f"/apps/{app_id}/restart"))
        assert task["success"], task
        write_line(apps, app_id, "after-restart")
        after_first, after_second = first.until("after-restart"), second.until("after-restart")
        assert after_first[-1] == after_second[-1]
        assert after_first[-1][0] > missed[-1][0]
        ids = [i for i, _ in first.events]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
    finally:
        first.close()
        second.close()
    wait_gauge(apps, "berth_log_stream_clients", 0)
    wait_gauge(apps, "berth_log_stream_followers", 0, kind="engine")


def test_a_new_client_replays_the_last_lines_from_the_shared_follower(apps):
    app_id = apps.install(unique("replay"))["id"]
    listener = Client(apps, app_id)
    try:
        for i in range(5):
            write_line(apps, app_id, f"replay-{i}")
        listener.until("replay-4")
        late = Client(apps, app_id, lines=3)
        try:
            replay = late.until(count=3)
        finally:
            late.close()
        # The three lines before the client came, as the listener saw them (the app may have
        # logged a request after replay-4: then the replay ends with that line).
        assert "replay-4" in [m for _, m in replay]
        seen = listener.events
        start = [i for i, _ in seen].index(replay[0][0])
        if len(seen) < start + 3:
            listener.until(count=start + 3 - len(seen))
        assert seen[start:start + 3] == replay
    finally:
        listener.close()
