"""The image hygiene (deployments.hygiene.run + containers.image_cleanup) on the real engine, with tiny
FROM scratch images built by containers.image_builds (so they carry Berth's real labels).

Every image made here carries `berth.test-run=<this run>` (in its Dockerfile) and is removed at the
end, with the container made from one of them.
"""
import os
import uuid

import pytest

import containers
from containers import image_builds, image_cleanup
from core import config
from support.harness import require

RUN = uuid.uuid4().hex[:8]
TEST_LABEL = "berth.test-run"


@pytest.fixture
def berth(tmp_path):
    """A migrated SQLite database and this data dir's config (BERTH_KEEP_BUILDS=2)."""
    require("a Docker engine (Debian docker.io with dockerd running)", containers.ping())
    from models import database, migrations, open_database
    previous = config._current
    config.use(config.load({"BERTH_DATA_DIR": str(tmp_path), "BERTH_KEEP_BUILDS": "2",
                            "DOCKER_HOST": os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")}))
    open_database(config.get().database_url)
    migrations.migrate()
    client = containers.client()
    yield tmp_path
    for c in client.containers.list(all=True, filters={"label": f"{TEST_LABEL}={RUN}"}):
        c.remove(force=True)
    for image in client.images.list(filters={"label": f"{TEST_LABEL}={RUN}"}):
        try:
            client.images.remove(image.id, force=True)
        except Exception:
            pass
    database.close()
    config.use(previous)


def _context(tmp_path, content, extra_labels=""):
    folder = tmp_path / f"ctx-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    (folder / "content.txt").write_text(content)
    (folder / "Dockerfile").write_text(f"FROM scratch\nCOPY content.txt /content.txt\n"
                                       f"LABEL {TEST_LABEL}={RUN} {extra_labels}\n")
    return str(folder)


def _build(tmp_path, app_id, number):
    tag = f"berth-build/{app_id}:{number}"
    image_builds.build(_context(tmp_path, f"{app_id} build {number} {RUN}"), tag, app_id=app_id,
                       deployment_id=number)
    return tag


def _exists(ref):
    return containers.client().api.images(name=ref) != [] if ":" in ref else _id_exists(ref)


def _id_exists(image_id):
    return any(i.id == image_id for i in containers.client().images.list(all=True))


def test_hygiene_keeps_newest_builds_the_live_one_the_one_in_a_container_and_foreign_images(berth):
    from deployments import hygiene
    from models.apps import App
    from models.deployments import Deployment
    app_id = f"hyg{RUN}"
    App.create(id=app_id, manifest={"id": "io.example"}, location="h", domain="example.test",
               installation_state="installed", run_state="running")
    tags = {n: _build(berth, app_id, n) for n in range(1, 7)}
    for n, tag in tags.items():
        Deployment.create(app=app_id, number=n, source={"type": "tarball"}, image=tag,
                          state="live" if n == 1 else "failed")
    # a stopped container of build 2 (never started: a FROM scratch image has nothing to run)
    client = containers.client()
    client.containers.create(tags[2], command=["/content.txt"], labels={TEST_LABEL: RUN})
    # an image with the same content and a build label but no instance label (built by hand, or
    # by another Berth on this engine), and one without any Berth label
    client.images.build(path=_context(berth, "foreign", f'{image_builds.LABEL_BUILD}=true'),
                        tag=f"berth-build/{app_id}:foreign", rm=True, pull=False)
    client.images.build(path=_context(berth, "unlabelled"), tag=f"berth-test/unlabelled:{RUN}", rm=True, pull=False)
    # an uninstalled app's build
    gone = _build(berth, f"gone{RUN}", 1)

    result = hygiene.run()

    assert sorted(result["removed"]) == sorted([tags[3], tags[4], gone]), result
    assert result["failed"] == {}
    for n in (1, 2, 5, 6):       # live; in a container; the newest two
        assert _exists(tags[n]), n
    for n in (3, 4):
        assert not _exists(tags[n]), n
    assert not _exists(gone)
    assert _exists(f"berth-build/{app_id}:foreign") and _exists(f"berth-test/unlabelled:{RUN}")
    assert hygiene.run()["removed"] == []     # nothing more to do


def test_the_engine_refuses_removing_an_image_a_container_uses_even_if_asked(berth):
    """The second guard: removal is never forced."""
    tag = _build(berth, f"guard{RUN}", 1)
    containers.client().containers.create(tag, command=["/content.txt"], labels={TEST_LABEL: RUN})
    [image] = [i for i in image_cleanup.built_images() if tag in i.tags]
    assert image_cleanup.remove(image) is not None
    assert _exists(tag)
