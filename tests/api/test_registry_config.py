"""Private registry credentials over HTTP against a real docker-registry with basic auth
(tests/support/registry.py): checked by a login through the engine before they are saved, the
password masked, and used to pull an app's image from that registry."""
import uuid

import docker.errors
import pytest

from support import images
from support import registry as registry_support
from support.apps_env import _berth, _closed_port, unique
from support.harness import require

MASK = "\u25cf" * 8


@pytest.fixture(scope="module")
def registry():
    require("docker-registry and htpasswd (Debian packages docker-registry, apache2-utils)",
            registry_support.available())
    server = registry_support.AuthRegistry().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def berth(parts, tmp_path_factory):
    env = _berth(parts, tmp_path_factory).start()
    yield env
    env.close()


@pytest.fixture(scope="module")
def private_image(parts, registry):
    """The test image, only in the private registry (not in the engine)."""
    repository = f"{registry.host}/berth-test/private-{uuid.uuid4().hex[:8]}"
    ref = registry.push(parts["docker"], images.httpd_image(parts["docker"], write_data=True, repository=repository))
    yield ref
    try:
        parts["docker"].images.remove(ref, force=True)
    except docker.errors.APIError:
        pass


def _body(registry, **changes):
    return {"provider": "other", "serverAddress": registry.host, "username": registry.username,
            "password": registry.password, **changes}


def test_registry_login_with_bad_credentials_is_refused_and_nothing_saved(berth, registry):
    api = berth.api
    r = api.post("/settings/registry_config", json=_body(registry, password="not-the-password"))
    assert r.status_code == 400, r.text
    assert registry.host in r.json()["message"]
    r = api.post("/settings/registry_config", json=_body(registry, serverAddress=f"127.0.0.1:{_closed_port()}"))
    assert r.status_code == 424, r.text
    assert api.post("/settings/registry_config", json=_body(registry, password=MASK)).status_code == 400
    assert api.get("/settings/registry_config").json() == {"provider": "noop", "serverAddress": ""}


def test_app_image_from_the_private_registry_needs_the_credentials(berth, private_image):
    manifest = berth.manifest(dockerImage=private_image)
    r = berth.request_install(unique("noauth"), manifest)
    assert r.status_code == 202, r.text
    task = berth.wait_task(r.json()["taskId"])
    assert not task["success"], task
    assert f"Cannot pull image {private_image}" in task["error"]["message"], task
    berth.run(berth.api.post(f"/apps/{r.json()['id']}/uninstall"))


def test_good_credentials_are_saved_and_the_password_masked(berth, registry):
    api = berth.api
    assert api.post("/settings/registry_config", json=_body(registry)).status_code == 200
    shown = api.get("/settings/registry_config").json()
    assert shown == {"provider": "other", "serverAddress": registry.host, "username": registry.username,
                     "password": MASK}
    assert api.post("/settings/registry_config", json=shown).status_code == 200    # the mask keeps it
    # The stored password is not handed to another user name of the same registry.
    assert api.post("/settings/registry_config", json=dict(shown, username="someone-else")).status_code == 400
    assert api.get("/settings/registry_config").json() == shown
    with open(berth.server.log_path, errors="replace") as f:
        assert registry.password not in f.read()
    assert registry.password not in api.get("/cloudron/eventlog", params={"per_page": 100}).text


def test_app_image_is_pulled_from_the_private_registry(berth, private_image, parts):
    with pytest.raises(docker.errors.ImageNotFound):
        parts["docker"].images.get(private_image)
    r = berth.request_install(unique("private"), berth.manifest(dockerImage=private_image))
    assert r.status_code == 202, r.text
    task = berth.wait_task(r.json()["taskId"])
    assert task["success"], task
    log = berth.task_log(task["id"])
    assert f"Pulling image {private_image}" in log and f"Pulled image {private_image}" in log, log
    assert berth.app(r.json()["id"])["installationState"] == "installed"
    assert parts["docker"].images.get(private_image)
    berth.run(berth.api.post(f"/apps/{r.json()['id']}/uninstall"))
