"""A Berth of its own for the addon tests: a private data dir (so its own instance id, app
network and service containers), a SQLite database, and the real Docker engine.

The configured images name a registry that cannot exist (`registry.invalid`), so the tests take
the path of an offline server on every machine: the images built from Debian packages (cached
by tag: slow only the first time on an engine). Everything this Berth made on the engine (its
service containers, the client containers of the tests, its app network) is removed at the end.
"""
import uuid

import pytest

import containers
from support.harness import require

TEST_LABEL = "berth.test-run"
RUN = uuid.uuid4().hex[:8]
UNPULLABLE = {"BERTH_POSTGRESQL_IMAGE": "registry.invalid/berth-test/postgres:15",
              "BERTH_MYSQL_IMAGE": "registry.invalid/berth-test/mariadb:10.11",
              "BERTH_REDIS_IMAGE": "registry.invalid/berth-test/redis:7"}


@pytest.fixture(scope="module")
def berth_env(tmp_path_factory):
    """Config + database of a throw-away Berth; cleans its containers and network up afterwards."""
    require("a Docker engine (Debian docker.io with dockerd running)", containers.ping())
    from core import config
    from models import database, migrations, open_database
    previous = config._current
    data_dir = tmp_path_factory.mktemp("addons-berth")
    config.use(config.load({"BERTH_DATA_DIR": str(data_dir), "BERTH_PROXY_LISTEN": "127.0.0.1", **UNPULLABLE}))
    open_database(config.get().database_url)
    migrations.migrate()
    try:
        yield data_dir
    finally:
        client = containers.client()
        for c in client.containers.list(all=True, filters={"label": f"{TEST_LABEL}={RUN}"}):
            c.remove(force=True)
        for service in containers.list_services():
            containers.remove_service(service["service"])
        containers.remove_app_network()
        database.close()
        config.use(previous)


@pytest.fixture(scope="module")
def test_labels(berth_env):
    """Labels for containers a test makes itself: removed at the end of the module."""
    return {TEST_LABEL: RUN}


@pytest.fixture(scope="module")
def run_client(berth_env):
    """run_client(image, argv, env=None) -> (exit code, output): `argv` in a throw-away container
    of `image` on the app network (the way an app reaches the services)."""
    return _run_client


def _run_client(image, argv, env=None):
    """Run `argv` in a throw-away container of `image` on the app network: (exit code, output)."""
    client = containers.client()
    container = client.containers.run(image, argv, detach=True, network=containers.app_network(),
                                      environment=env or {}, labels={TEST_LABEL: RUN})
    try:
        code = container.wait(timeout=120)["StatusCode"]
        return code, container.logs().decode(errors="replace").strip()
    finally:
        container.remove(force=True)
