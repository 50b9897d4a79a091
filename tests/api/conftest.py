"""Fixtures of the API tier shared across test modules."""
import shutil

import pytest
import requests

from support import images, status_bodies
from support.apps_env import CATALOG, _docker
from support.harness import require


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """What every app test needs from the machine: the engine, nginx, curl, the test image and
    the test catalog (tests/support/catalog.json with the image placeholder replaced by its tag)."""
    require("a Docker engine (Debian package docker.io, dockerd running)", _docker() is not None)
    require("nginx (Debian package nginx)", shutil.which("nginx") is not None)
    require("curl (Debian package curl)", shutil.which("curl") is not None)
    require("a static busybox (Debian package busybox-static)", images.busybox_is_static())
    client = _docker()
    image = images.httpd_image(client, write_data=True)
    with open(CATALOG) as f:
        text = f.read()
    assert "@TEST_IMAGE@" in text
    catalog = tmp_path_factory.mktemp("catalog") / "catalog.json"
    catalog.write_text(text.replace("@TEST_IMAGE@", image))
    return {"image": image, "catalog": str(catalog), "docker": client}


@pytest.fixture(scope="module", autouse=True)
def created_and_empty_answers_follow_the_rule():
    """Every answer an API test receives is checked: a 201 carries a JSON object, a 204 no body
    (support/status_bodies.py), so every route the tests exercise is held to it. Module scope:
    the check ends with the API module, so tests of other tiers that run after it in the same
    process (pytest-xdist) talk to the Docker engine's own API unchecked."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(requests.Session, "send", status_bodies.checking_send(requests.Session.send))
        yield
