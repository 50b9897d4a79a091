"""The containers package against the real Docker engine, with the busybox test image
(tests/support/images.py); the health wait (apps.probe) against the same containers.

Every container made here carries the label berth.test-run=<this run> and is removed at the end;
the test image is kept (it is cached by content hash for the next run).
"""
import asyncio
import datetime
import itertools
import os
import shutil
import signal
import socket
import stat
import tempfile
import threading
import time
import uuid

import pytest
import requests

import containers
from apps import probe
from core import config, data_paths
from support import images
from support.harness import require

RUN = uuid.uuid4().hex[:8]
TEST_LABEL = "berth.test-run"
MB = 1024 * 1024
_ids = itertools.count(1)


@pytest.fixture(scope="module")
def image(engine):
    return images.httpd_image(engine, write_data=True)


class App:
    """One app id with its own data dir; start() = containers.create_and_start with test labels."""

    def __init__(self, image, data_dir):
        self.id = f"t{RUN}-{next(_ids)}"
        self.image = image
        self.data_dir = str(data_dir)
        self.result = None

    def start(self, **kw):
        kw.setdefault("env", {})
        kw.setdefault("memory_limit", 64 * MB)
        kw.setdefault("http_port", images.PORT)
        kw.setdefault("data_dir", self.data_dir)
        kw.setdefault("labels", {TEST_LABEL: RUN})
        self.result = containers.create_and_start(self.id, kw.pop("image", self.image), **kw)
        return self.result

    def healthy(self, timeout=10):
        return probe.wait_healthy(self.port, images.HEALTH_PATH, timeout=timeout, app_id=self.id)

    @property
    def port(self):
        return self.result["host_port"]

    def get(self, path):
        return requests.get(f"http://127.0.0.1:{self.port}{path}", timeout=5)

    def starts(self):
        with open(os.path.join(self.data_dir, "starts")) as f:
            return len(f.read().splitlines())


@pytest.fixture
def app(image, tmp_path):
    a = App(image, tmp_path / "appdata")
    yield a
    containers.remove(a.id)


def wait_for(predicate, timeout=10, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_runs_published_on_loopback_with_env_memory_labels_and_data(app, engine):
    result = app.start(env={"FOO": "bar baz", "CLOUDRON_APP_ORIGIN": "https://app.example.test"},
                       memory_limit=96 * MB)
    assert result["name"] == f"berth-{app.id}"
    assert app.healthy() == 200

    index = app.get("/")
    assert index.status_code == 200 and images.INDEX_MARKER in index.text
    env_page = app.get("/cgi-bin/env").text.splitlines()
    assert "FOO=bar baz" in env_page and "CLOUDRON_APP_ORIGIN=https://app.example.test" in env_page

    raw = engine.api.inspect_container(result["id"])
    assert raw["Name"] == f"/berth-{app.id}"
    labels = raw["Config"]["Labels"]
    assert labels["berth.managed"] == "true" and labels["berth.app-id"] == app.id
    assert raw["HostConfig"]["Memory"] == 96 * MB
    assert raw["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert raw["NetworkSettings"]["Ports"]["8000/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(app.port)}]
    mount, = raw["Mounts"]
    assert (mount["Type"], mount["Source"], mount["Destination"], mount["RW"]) == \
        ("bind", app.data_dir, "/app/data", True)

    # The container wrote into /app/data: it shows up in the app's data dir on the host.
    assert app.starts() == 1
    with open(os.path.join(app.data_dir, "env")) as f:
        assert "FOO=bar baz" in f.read().splitlines()

    info = containers.inspect(app.id)
    assert info["exists"] and info["running"] and info["status"] == "running"
    assert info["host_port"] == app.port and info["http_port"] == images.PORT
    assert info["memory_limit"] == 96 * MB and info["id"] == result["id"]
    assert (info["restart_count"], info["oom_killed"]) == (0, False)
    assert any(c["app_id"] == app.id and c["running"] for c in containers.list_managed())


def test_memory_limit_updates_in_place(app, engine):
    app.start(memory_limit=64 * MB)
    containers.update_memory(app.id, 128 * MB)
    info = containers.inspect(app.id)
    assert info["memory_limit"] == 128 * MB and info["running"]
    assert engine.api.inspect_container(info["id"])["HostConfig"]["MemorySwap"] == 128 * MB


def test_stop_start_restart(app):
    app.start()
    app.healthy()
    containers.stop(app.id)
    info = containers.inspect(app.id)
    assert not info["running"] and info["status"] == "exited" and info["exit_code"] == 0
    # The host port stays the app's while it is stopped, and nothing answers on it.
    assert info["host_port"] == app.port and app.port in containers.reserved_ports()
    with pytest.raises(requests.ConnectionError):
        app.get("/")
    containers.stop(app.id)     # stopping a stopped app is fine

    containers.start(app.id)
    app.healthy()
    assert app.starts() == 2 and containers.inspect(app.id)["host_port"] == app.port
    containers.start(app.id)    # starting a running app is fine

    containers.restart(app.id)
    app.healthy()
    assert app.starts() == 3 and containers.inspect(app.id)["running"]


def test_process_killed_from_outside_comes_back_by_restart_policy(app):
    app.start()
    app.healthy()
    os.kill(containers.inspect(app.id)["pid"], signal.SIGKILL)
    info = wait_for(lambda: (i := containers.inspect(app.id)) and i["restart_count"] >= 1 and i["running"] and i,
                    what="the restart policy to restart the container")
    assert info["restart_count"] == 1
    app.healthy()
    assert app.starts() == 2


def test_docker_kill_is_reported_and_start_brings_it_back(app, engine):
    # Docker counts `docker kill` as a manual stop: its restart policy leaves the container down,
    # so inspect must say so (the health check reports it and starts it again).
    app.start()
    app.healthy()
    engine.containers.get(app.result["id"]).kill()
    info = wait_for(lambda: (i := containers.inspect(app.id)) and not i["running"] and i, what="the kill")
    assert info["status"] == "exited" and info["exit_code"] == 137
    containers.start(app.id)
    app.healthy()
    assert app.starts() == 2


def test_logs_are_timestamped_lines(app):
    before = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=5)
    app.start()
    app.healthy()
    assert app.get("/missing-page").status_code == 404
    lines = wait_for(lambda: (got := containers.logs(app.id, 100)) and any("response:404" in t for _, t in got)
                     and got, what="the request's log line")
    texts = [t for _, t in lines]
    assert "berth-test: starting on port 8000" in texts
    assert all(isinstance(ts, datetime.datetime) and before <= ts <= before + datetime.timedelta(minutes=1)
               for ts, _ in lines)
    assert containers.logs(app.id, 1) == lines[-1:]
    assert containers.logs("no-such-app", 10) == []


def test_follow_logs_streams_new_lines_and_closes(app):
    app.start()
    app.healthy()
    follower = containers.follow_logs(app.id, lines=0)
    seen = []
    reader = threading.Thread(target=lambda: seen.extend(follower), daemon=True)
    reader.start()
    time.sleep(0.2)
    app.get("/first-missing")
    wait_for(lambda: any("response:404" in t for _, t in seen), what="the followed line")
    assert all("starting on port" not in t for _, t in seen)     # lines=0: only new lines
    follower.close()
    reader.join(5)
    assert not reader.is_alive()


def test_follow_logs_ends_when_the_container_stops(app):
    app.start()
    app.healthy()
    follower = containers.follow_logs(app.id, lines=5)
    seen = []
    reader = threading.Thread(target=lambda: seen.extend(follower), daemon=True)
    reader.start()
    containers.stop(app.id)
    reader.join(10)
    assert not reader.is_alive()
    texts = [t for _, t in seen]
    assert "berth-test: starting on port 8000" in texts and "berth-test: stopping" in texts


def test_follow_logs_async(app):
    app.start()
    app.healthy()

    async def main():
        stream = containers.follow_logs_async(app.id, lines=10)
        got = []
        async for _ts, text in stream:
            got.append(text)
            if text == "berth-test: healthy":
                asyncio.get_running_loop().run_in_executor(None, app.get, "/async-missing")
            if "response:404" in text:
                break
        await stream.aclose()
        return got

    got = asyncio.run(asyncio.wait_for(main(), 15))
    assert "berth-test: starting on port 8000" in got and "response:404" in got[-1]
    with pytest.raises(containers.ContainerError, match="does not exist"):
        containers.follow_logs("no-such-app")


def test_create_replaces_the_existing_container(app, engine):
    first = app.start()
    app.healthy()
    second = app.start(env={"SECOND": "yes"})
    app.healthy()
    assert second["id"] != first["id"]
    found = engine.containers.list(all=True, filters={"label": f"berth.app-id={app.id}"})
    assert [c.id for c in found] == [second["id"]]
    assert "SECOND=yes" in app.get("/cgi-bin/env").text.splitlines()


def test_remove_leaves_nothing_and_is_idempotent(app, engine):
    app.start()
    app.healthy()
    containers.remove(app.id)
    assert containers.inspect(app.id) is None
    assert not engine.containers.list(all=True, filters={"label": f"berth.app-id={app.id}"})
    assert all(c["app_id"] != app.id for c in containers.list_managed())
    containers.remove(app.id)
    containers.stop(app.id)
    with pytest.raises(containers.ContainerError, match="does not exist"):
        containers.start(app.id)
    with pytest.raises(containers.ContainerError, match="does not exist"):
        containers.restart(app.id)


def test_remove_takes_the_leftovers_of_an_interrupted_deploy(app, engine):
    from containers import deploy_switch
    app.start()
    beside = app.start(name=deploy_switch.next_name(app.id))
    assert beside["name"] == deploy_switch.next_name(app.id)
    deploy_switch.promote(app.id)          # the app's name now runs the new one, -old the first
    assert deploy_switch.exists(deploy_switch.old_name(app.id))
    containers.remove(app.id)
    assert not engine.containers.list(all=True, filters={"label": f"berth.app-id={app.id}"})


def test_chosen_ports_and_extra_tcp_udp_ports(app):
    fixed = containers.free_port()
    result = app.start(host_port=fixed, tcp_ports={9000: None}, udp_ports={9001: None})
    app.healthy()
    assert result["host_port"] == fixed
    info = containers.inspect(app.id)
    assert info["tcp_ports"] == result["tcp_ports"] and set(info["tcp_ports"]) == {9000}
    assert info["udp_ports"] == result["udp_ports"] and set(info["udp_ports"]) == {9001}
    assert len({fixed, result["tcp_ports"][9000]}) == 2
    assert {fixed, result["tcp_ports"][9000], result["udp_ports"][9001]} <= containers.reserved_ports()


def test_host_port_in_use_is_a_clear_error_and_leaves_no_container(app, engine):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(containers.ContainerError, match=f"Cannot start container berth-{app.id}: .*"):
            app.start(host_port=busy.getsockname()[1])
    assert containers.inspect(app.id) is None


def test_local_image_is_used_as_is(image):
    lines = []
    containers.ensure_image(image, lines.append)
    assert lines == [f"Using local image {image}"]


def test_missing_image_fails_with_the_engines_reason(engine):
    lines = []
    started = time.monotonic()
    with pytest.raises(containers.ContainerError) as caught:
        containers.ensure_image("berth-test/does-not-exist:1", lines.append)
    assert caught.value.message.startswith("Cannot pull image berth-test/does-not-exist:1: ")
    assert len(caught.value.message) > len("Cannot pull image berth-test/does-not-exist:1: ")
    assert caught.value.status == 424
    assert lines == ["Pulling image berth-test/does-not-exist:1"]
    assert time.monotonic() - started < 30


def test_missing_image_is_pulled_from_a_registry_with_condensed_progress(engine):
    require("docker-registry (Debian package docker-registry)", images.LocalRegistry.available())
    registry = images.LocalRegistry().start()
    ref = None
    try:
        # Incompressible payload: a layer big enough for real download progress events.
        local = images.httpd_image(engine, extra_files={"www/payload.bin": os.urandom(8 * MB)},
                                   repository="berth-test/pull-source")
        ref = registry.push(engine, local, f"berth-test/pull:{RUN}")
        engine.images.remove(local)
        assert not containers.image_exists(ref)

        lines = []
        containers.ensure_image(ref, lines.append)
        assert containers.image_exists(ref)
        assert lines[0] == f"Pulling image {ref}" and lines[-1] == f"Pulled image {ref}"
        assert any(line.startswith("Downloading: ") for line in lines)
        assert any(line.endswith(": pull complete (1/1 layers)") for line in lines)
        assert f"Status: Downloaded newer image for {ref}" in lines
        assert len(lines) < 12      # condensed: no line per progress event

        absent = f"{registry.host}/berth-test/absent:1"
        with pytest.raises(containers.ContainerError, match=f"^Cannot pull image {absent}: .*manifest"):
            containers.ensure_image(absent)
    finally:
        if ref and containers.image_exists(ref):
            engine.images.remove(ref, force=True)
        registry.stop()


def test_create_with_an_absent_image_fails_cleanly(app):
    with pytest.raises(containers.ContainerError, match=f"Cannot create container berth-{app.id}: .*No such image"):
        app.start(image="berth-test/does-not-exist:1")
    assert containers.inspect(app.id) is None


def test_crashing_app_fails_the_health_wait_with_its_state(app):
    app.start(env={"TEST_EXIT_CODE": "3"})
    with pytest.raises(containers.ContainerError) as caught:
        probe.wait_healthy(app.port, images.HEALTH_PATH, timeout=1.5, app_id=app.id)
    message = caught.value.message
    assert message.startswith(f"Health check http://127.0.0.1:{app.port}/health failed after 1.5 s (last: ")
    assert "exit code 3" in message
    assert any("exiting with code 3" in t for _, t in containers.logs(app.id, 10))


def test_health_wait_reports_the_last_status(app):
    app.start()
    app.healthy()
    lines = []
    with pytest.raises(containers.ContainerError, match=r"failed after 0.5 s \(last: HTTP 404\)"):
        probe.wait_healthy(app.port, "/not-there", timeout=0.5, log=lines.append)
    assert lines == [f"Waiting for http://127.0.0.1:{app.port}/not-there: HTTP 404"]


def test_health_wait_sees_a_slow_start(app):
    app.start(env={"TEST_HEALTH_DELAY": "1"})
    lines = []
    assert probe.wait_healthy(app.port, images.HEALTH_PATH, timeout=10, log=lines.append) == 200
    assert lines[-1] == f"http://127.0.0.1:{app.port}/health answered HTTP 200"
    assert any("HTTP 404" in line for line in lines[:-1])


def test_unreachable_engine_is_a_clear_error(engine, tmp_path):
    saved = config.get()
    config.use(config.load({"BERTH_DATA_DIR": str(tmp_path), "DOCKER_HOST": f"unix://{tmp_path}/none.sock"}))
    try:
        assert containers.ping() is False
        with pytest.raises(containers.ContainerError, match="Docker engine not reachable at unix://"):
            containers.inspect("any-app")
    finally:
        config.use(saved)
    assert containers.ping()


# --- finding 7: what an app plants in its data folder stays out of other host users' reach ----

NOBODY = 65534


def as_nobody(action):
    """Run `action()` in a child process that became `nobody`: 0 when it worked, 13 when it was
    refused (PermissionError), 1 for anything else."""
    pid = os.fork()
    if pid == 0:  # the child: only os calls, then _exit (no pytest teardown in here)
        code = 1
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            action()
            code = 0
        except PermissionError:
            code = 13
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.fixture
def berth_data_dir(engine):
    """A data dir laid out as Berth's (apps/<id>/data), reachable by every user like a default
    ./data made with umask 022, with config pointing at it."""
    saved = config.get()
    root = tempfile.mkdtemp(prefix="berth-data-")
    os.chmod(root, 0o755)
    config.use(config.load({"BERTH_DATA_DIR": root, "DOCKER_HOST": saved.docker_host}))
    yield root
    config.use(saved)
    shutil.rmtree(root, ignore_errors=True)


def test_app_data_folder_of_a_running_app_cannot_be_listed_or_entered_by_other_host_users(app, berth_data_dir):
    data = app.data_dir = data_paths.app_data(app.id)
    app.start()
    app.healthy()
    assert app.starts() == 1                                    # the app wrote its data
    assert as_nobody(lambda: os.listdir(berth_data_dir)) == 0   # the data dir itself is open...
    for folder in (data_paths.apps_root(), data_paths.app_dir(app.id), data):
        assert as_nobody(lambda folder=folder: os.listdir(folder)) == 13, folder   # ...its apps are not
    assert as_nobody(lambda: os.chdir(data)) == 13
    assert as_nobody(lambda: open(os.path.join(data, "starts")).close()) == 13
    for folder in (data_paths.apps_root(), data_paths.app_dir(app.id)):
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700


def test_existing_app_folders_made_open_by_older_versions_are_closed(berth_data_dir):
    data = data_paths.app_data("old-app")
    os.makedirs(data, mode=0o755)
    os.chmod(data_paths.apps_root(), 0o755)
    assert as_nobody(lambda: os.listdir(data)) == 0
    containers.protect_app_folders()
    assert as_nobody(lambda: os.listdir(data)) == 13
    assert stat.S_IMODE(os.stat(data_paths.app_dir("old-app")).st_mode) == 0o700


def test_mknod_in_an_app_container_fails(app, engine):
    result = app.start()
    app.healthy()
    container = engine.containers.get(result["id"])
    # /dev/mem-like node (c 1 1) and /dev/null's numbers (c 1 3), in the bind-mounted data folder.
    for device in ("1 1", "1 3"):
        code, output = container.exec_run(["mknod", "/app/data/devnode", "c", *device.split()])
        assert code != 0, output
        assert b"Operation not permitted" in output, output
    assert not os.path.exists(os.path.join(app.data_dir, "devnode"))
    host_config = engine.api.inspect_container(result["id"])["HostConfig"]
    assert {"MKNOD", "SETFCAP"} <= {c.upper().removeprefix("CAP_") for c in host_config["CapDrop"]}
    assert "no-new-privileges" in host_config["SecurityOpt"]


def test_ports_of_containers_made_before_the_port_label_are_still_reserved(engine, image):
    port = containers.free_port()
    made = engine.containers.create(image, name=f"berth-t{RUN}-unlabelled",
                                    labels={"berth.managed": "true", TEST_LABEL: RUN},
                                    ports={f"{images.PORT}/tcp": ("127.0.0.1", port)})
    try:
        assert port in containers.reserved_ports()
    finally:
        made.remove(force=True)
