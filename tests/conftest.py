"""Shared fixtures: real Berth servers over HTTP, on SQLite and on PostgreSQL.

`berth` is parametrised over both database backends, so every API test that uses it runs
against both. `owner` is an activated instance's owner client (one per backend per session);
tests that need a pristine instance use `fresh_berth`.
"""
import dataclasses
import os

import pytest

from core import config
from support.harness import Api, BerthServer, PostgresCluster, activate, require, unique  # noqa: F401
from support.s3server import S3Server

# Test task bodies (tests/support/task_bodies.py) are the `test.*` names of tasks.registry in
# this process and in every server the tests start (they inherit the environment).
os.environ.setdefault("BERTH_TEST_TASK_BODIES", "tests.support.task_bodies")
# The S3 test server listens on 127.0.0.1; production refuses local storage endpoints. Tests of
# that refusal start their server with BERTH_ALLOW_LOCAL_STORAGE_ENDPOINTS=0.
os.environ.setdefault("BERTH_ALLOW_LOCAL_STORAGE_ENDPOINTS", "1")
# POST /cloudron/reboot reboots the machine when BERTH_ALLOW_REBOOT=1: never in a test run, whatever
# the shell exports (the role walk calls every operation).
os.environ["BERTH_ALLOW_REBOOT"] = "0"


@pytest.fixture(scope="session")
def postgres():
    require("PostgreSQL (Debian package postgresql: initdb, pg_ctl)", PostgresCluster.available())
    cluster = PostgresCluster().start()
    yield cluster
    cluster.stop()


def _database_url(request, backend):
    if backend == "postgresql":
        return request.getfixturevalue("postgres").new_database()
    return None


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def berth(request):
    server = BerthServer(database_url=_database_url(request, request.param)).start()
    server.backend = request.param
    yield server
    server.cleanup()


@pytest.fixture
def fresh_berth(request):
    """A new, not yet activated server (SQLite) for tests of first-run behaviour."""
    server = BerthServer().start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def owner(berth):
    return activate(berth)



@pytest.fixture
def make_user(owner):
    """Create a user with a role and return (user json, Api logged in as that user)."""
    def make(role="user", password="Pass-word-1"):
        name = unique(role[:4])
        r = owner.post("/users", json={"username": name, "email": f"{name}@example.com",
                                       "password": password, "role": role})
        assert r.status_code == 201, r.text
        login = Api(owner.base).post("/cloudron/login", json={"username": name, "password": password})
        assert login.status_code == 200, login.text
        return r.json(), owner.with_token(login.json()["token"])
    return make


@pytest.fixture(scope="session")
def s3():
    """A local S3-compatible server (moto) for the storage tests."""
    require("a local S3 server (pip packages moto[server] and boto3)", S3Server.available())
    server = S3Server().start()
    yield server
    server.stop()


@pytest.fixture
def settings():
    """Change core.config for one test: settings(data_dir=..., allow_local_storage_endpoints=...)."""
    before = config.get()

    def change(**values):
        config.use(dataclasses.replace(config.get(), **values))
    yield change
    config.use(before)
