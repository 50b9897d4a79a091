"""The engine fixture of the container tests: the real Docker engine and the busybox test image's
prerequisites. Each module names its run (RUN); every container it makes carries the label
berth.test-run=<RUN> and is removed when the module is done."""
import pytest

import containers
from support import images
from support.harness import require

TEST_LABEL = "berth.test-run"


@pytest.fixture(scope="module")
def engine(request):
    require("a Docker engine (Debian docker.io with dockerd running)", containers.ping())
    require("Debian's static busybox (/bin/busybox from busybox-static)", images.busybox_is_static())
    client = containers.client()
    yield client
    for c in client.containers.list(all=True, filters={"label": f"{TEST_LABEL}={request.module.RUN}"}):
        c.remove(force=True)
