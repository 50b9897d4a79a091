"""addons.services against the real engine: what /services reports, the health monitor bringing a
killed service back, memory limits, and an app container reaching a service by name."""
import os
import shutil
import time
import uuid

import pytest

import containers
from addons import images, postgresql, services
from core import errors


def _wait_status(name, wanted, timeout=40):
    deadline = time.monotonic() + timeout
    while True:
        status = services.status(name)
        if status["status"] == wanted or time.monotonic() > deadline:
            return status
        time.sleep(1)


def test_killed_postgresql_is_reported_and_healed_and_the_app_recovers(berth_env, run_client):
    app = str(uuid.uuid4())
    env = postgresql.provision(app)
    url = env["CLOUDRON_POSTGRESQL_URL"]
    image = images.ensure_image("postgresql")
    assert run_client(image, ["psql", url, "-Atc", "CREATE TABLE t (v int); INSERT INTO t VALUES (7)"])[0] == 0
    assert _wait_status("postgresql", "active")["status"] == "active"

    containers.client().api.kill(services.container("postgresql"))
    status = services.status("postgresql")
    assert status["status"] == "stopped" and status["error"], status
    assert services.check_and_heal() == ["postgresql"]
    assert services.check_and_heal() == []                      # running again: nothing to do
    services.wait_ready("postgresql", services.root_password("postgresql"))
    assert run_client(image, ["psql", url, "-Atc", "SELECT v FROM t"]) == (0, "7")
    assert _wait_status("postgresql", "active")["status"] == "active"
    postgresql.deprovision(app)


def test_a_service_stopped_on_purpose_is_left_stopped_until_restarted(berth_env):
    services.ensure_service("postgresql")
    services.stop("postgresql")
    assert services.status("postgresql")["status"] == "stopped"
    assert services.check_and_heal() == []
    services.restart("postgresql")
    services.wait_ready("postgresql", services.root_password("postgresql"))
    assert services.check_and_heal() == []
    assert containers.service_inspect("postgresql")["running"]


def test_status_shows_memory_and_the_limit_can_change_in_place(berth_env):
    services.ensure_service("postgresql")
    before = containers.service_inspect("postgresql")["id"]
    services.set_memory_limit("postgresql", 300 * services.MIB)
    status = services.status("postgresql")
    assert status["config"]["memoryLimit"] == 300 * services.MIB
    assert containers.service_inspect("postgresql")["memory_limit"] == 300 * services.MIB
    assert 0 < status["memoryUsed"] < 300 * services.MIB and status["memoryPercent"] >= 0
    services.ensure_service("postgresql")                      # the kept limit does not recreate it
    assert containers.service_inspect("postgresql")["id"] == before
    with pytest.raises(errors.BadRequest):
        services.set_memory_limit("postgresql", 1024)


def test_names_and_unknown_services(berth_env):
    assert services.list_names()[:2] == ["postgresql", "mysql"]
    with pytest.raises(errors.NotFound):
        services.status(f"redis-{uuid.uuid4()}")
    with pytest.raises(errors.NotFound):
        services.status("mongodb")


def test_app_container_on_the_app_network_reaches_the_service_by_name(berth_env, test_labels, tmp_path):
    services.ensure_service("postgresql")
    app_id = f"addons-test-{uuid.uuid4().hex[:8]}"
    containers.create_and_start(app_id, images.ensure_image("redis"), data_dir=str(tmp_path / "data"),
                                http_port=8000, command=["sleep", "300"], labels=test_labels,
                                network=containers.app_network())
    try:
        code, out = containers.exec_run(containers.container_name(app_id), ["getent", "hosts", "postgresql"])
        assert code == 0 and out.split()[1:] == [b"postgresql"], out
    finally:
        containers.remove(app_id)


def test_healing_that_races_an_uninstall_does_not_bring_the_removed_redis_back(berth_env):
    """The health monitor saw an app's Redis missing just as the app's uninstall removed it
    (container, then data and row, under the service's lock): when it gets the lock, it must find
    the row gone and leave it, not start a Redis nobody owns again."""
    import threading

    from addons import redis
    app_id = str(uuid.uuid4())
    redis.provision(app_id)
    name = services.redis_name(app_id)
    try:
        held = services._locked(name)
        held.__enter__()
        healer = None
        try:
            containers.remove_service(name)          # what remove_redis does first, under the lock
            result = []
            healer = threading.Thread(target=lambda: result.append(services.check_and_heal()))
            healer.start()
            deadline = time.monotonic() + 20    # the healer saw the container missing and waits for the lock
            while healer.is_alive() and time.monotonic() < deadline and not _waiting_on(held.path):
                time.sleep(0.05)
            shutil.rmtree(services.data_paths.addon_service_data(name))
            services.credentials.forget_service(name)
            os.unlink(held.path)
        finally:
            held.__exit__(None, None, None)
        if healer is not None:
            healer.join(60)
        assert result and name not in result[0], result
        assert containers.service_inspect(name) is None
        assert not os.path.exists(services.data_paths.addon_service_data(name))
    finally:
        services.remove_redis(app_id)


def _waiting_on(path):
    """Does some thread of this process wait for a flock on `path` (/proc/locks marks waiters ->)?"""
    ino = os.stat(path).st_ino
    with open("/proc/locks") as f:
        return any("->" in line and line.split()[-3].endswith(f":{ino}") for line in f)
