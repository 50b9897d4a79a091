"""Deploy rules without a server: which sources are taken, what is stored of them, how a tarball
is unpacked, and that secrets never reach the task table or the deployment row."""
import io
import json
import os
import tarfile
import uuid

import pytest

from core.errors import BadRequest, Conflict

# ---- sources ---------------------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "ext::sh -c touch% /tmp/pwned",            # git's ext transport runs a program
    "file:///etc", "/etc", "./repo",            # this server's own files
    "--upload-pack=touch /tmp/pwned",           # an option, not a URL
    "https://host/repo extra", "fd::3",
    "https://user:password@host/repo.git",      # a password in the URL would be shown with it
])
def test_git_source_with_a_transport_that_runs_programs_or_reads_local_files_is_refused(url):
    from deployments import sources
    with pytest.raises(BadRequest):
        sources.check({"type": "git", "url": url, "ref": "main"})


@pytest.mark.parametrize("ref", ["--output=/tmp/x", "a..b", "main branch", ""])
def test_git_ref_that_could_be_an_option_is_refused(ref):
    from deployments import sources
    if ref == "":
        assert sources.check({"type": "git", "url": "https://h/r.git", "ref": ref})["ref"] == "HEAD"
        return
    with pytest.raises(BadRequest):
        sources.check({"type": "git", "url": "https://h/r.git", "ref": ref})


def test_git_sources_taken():
    from deployments import sources
    for url in ("https://github.com/o/r.git", "http://127.0.0.1:9418/r", "git://127.0.0.1:9418/r",
                "ssh://git@host:22/o/r.git", "git@github.com:o/r.git"):
        assert sources.check({"type": "git", "url": url, "ref": "v1.2"})["url"] == url
    checked = sources.check({"type": "git", "url": "https://h/r.git", "ref": "main", "commit": "a" * 40,
                             "token": "t0k"})
    assert checked == {"type": "git", "url": "https://h/r.git", "ref": "main", "commit": "a" * 40,
                       "token": "t0k", "deployKey": None}
    with pytest.raises(BadRequest):     # a token goes over http(s) only
        sources.check({"type": "git", "url": "git@h:o/r.git", "token": "t"})
    with pytest.raises(BadRequest):
        sources.check({"type": "git", "url": "https://h/r.git", "commit": "not-hex"})


def test_tarball_and_image_sources(tmp_path):
    from deployments import sources
    f = tmp_path / "s.tar"
    f.write_bytes(b"x")
    assert sources.check({"type": "tarball", "path": str(f)}) == {"type": "tarball", "path": str(f)}
    for bad in ({"type": "tarball", "path": "relative.tar"}, {"type": "tarball", "path": str(tmp_path)},
                {"type": "image", "image": "Bad Image"}, {"type": "zip"}, "git"):
        with pytest.raises(BadRequest):
            sources.check(bad)
    assert sources.check_build_args({"A_1": 2}) == {"A_1": "2"}
    with pytest.raises(BadRequest):
        sources.check_build_args({"1bad": "x"})


def test_secrets_are_masked_in_what_is_stored():
    from core.masking import MASK
    from deployments import store
    shown = store.masked({"type": "git", "url": "u", "token": "secret", "deployKey": None})
    assert shown == {"type": "git", "url": "u", "token": MASK}
    assert store.build_tag("ABC-1", 7) == "berth-build/abc-1:7"


# ---- tarballs --------------------------------------------------------------------------------

def _tar(members):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, data
                tar.addfile(info)
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, data
                tar.addfile(info)
            elif kind == "device":
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
                tar.addfile(info)
    return buffer.getvalue()


@pytest.fixture
def unpack(tmp_path):
    from core import config
    previous = config._current
    config.use(config.load({"BERTH_DATA_DIR": str(tmp_path / "data")}))

    def run(members):
        from deployments import checkout
        archive = tmp_path / f"{uuid.uuid4().hex}.tar.gz"
        archive.write_bytes(_tar(members))
        dest = tmp_path / uuid.uuid4().hex
        dest.mkdir()
        return checkout.unpack_tarball(str(archive), str(dest))
    yield run
    config.use(previous)


def test_tarball_is_unpacked_and_a_single_top_folder_is_the_context(unpack):
    context = unpack([("app/Dockerfile", "file", b"FROM scratch\n"), ("app/x", "file", b"1")])
    assert context.endswith("/src/app") and os.path.isfile(os.path.join(context, "Dockerfile"))
    context = unpack([("Dockerfile", "file", b"FROM scratch\n")])
    assert context.endswith("/src")
    with pytest.raises(BadRequest, match="no Dockerfile"):
        unpack([("readme", "file", b"")])


@pytest.mark.parametrize("member", [
    ("../outside", "file", b"x"),
    ("/abs", "file", b"x"),
    ("link", "symlink", "../../../../etc/passwd"),
    ("link", "symlink", "/etc/passwd"),
    ("hard", "hardlink", "../../outside"),
    ("null", "device", None),
])
def test_deploy_tarball_member_leaving_the_folder_or_a_device_writes_nothing_outside(unpack, tmp_path, member):
    with pytest.raises(BadRequest):
        unpack([("Dockerfile", "file", b"FROM scratch\n"), member])
    found = [os.path.join(top, name) for top, dirs, files in os.walk(tmp_path) for name in dirs + files
             if name in ("outside", "abs", "link", "hard", "null")]
    assert found == []


def test_manifest_file_symlink_in_the_source_is_not_followed(tmp_path):
    from deployments import task_bodies
    (tmp_path / "CloudronManifest.json").symlink_to("/etc/passwd")
    with pytest.raises(BadRequest):
        task_bodies._read_manifest(str(tmp_path))
    os.unlink(tmp_path / "CloudronManifest.json")
    (tmp_path / "CloudronManifest.json").write_text(json.dumps({"id": "x"}))
    assert task_bodies._read_manifest(str(tmp_path)) == {"id": "x"}


# ---- requests --------------------------------------------------------------------------------

@pytest.fixture
def app_row(db):
    from models import Domain
    from models.apps import App
    Domain.create(domain="example.test", zone_name="example.test", provider="noop", fallback_cert="-",
                  fallback_key="-")
    return App.create(id=str(uuid.uuid4()), location="a", domain="example.test", installation_state="installed",
                      manifest={"id": "io.test", "version": "1.0.0", "httpPort": 8000, "healthCheckPath": "/",
                                "dockerImage": "x:1", "manifestVersion": 2})


def test_git_token_and_deploy_key_never_reach_the_task_table_or_the_deployment(app_row):
    import eventlog
    from deployments import requests, store
    from models import Event, Task
    task_id = requests.start_deploy(eventlog.Actor(user_id="u", username="owner", role="owner"), app_row.id,
                                    {"type": "git", "url": "https://h/r.git", "ref": "main",
                                     "token": "tok-very-secret"})
    task = Task.get_by_id(task_id)
    stored = json.dumps(task.args) + json.dumps([e.data for e in Event.select()])
    deployment, baseline = store.list_for_app(app_row.id)
    stored += json.dumps(deployment.source)
    assert "tok-very-secret" not in stored
    assert deployment.state == "building" and deployment.task_id == task_id and deployment.number == 2
    assert (baseline.number, baseline.state, baseline.image) == (1, "live", "x:1")    # the installed version
    assert requests.unseal_secret(deployment.id, "token", task.args["sealed_token"]) == "tok-very-secret"
    # sealed for this deployment only: another row's context cannot open it
    assert requests.unseal_secret(deployment.id + 1, "token", task.args["sealed_token"]) is None


def test_deploy_of_an_app_being_uninstalled_is_refused(app_row):
    import eventlog
    from deployments import requests
    from models.apps import App
    App.update(installation_state="pending_uninstall").where(App.id == app_row.id).execute()
    with pytest.raises(Conflict):
        requests.start_deploy(eventlog.SYSTEM, app_row.id, {"type": "image", "image": "x:2"})
    # in debug mode the container runs the debug command: no health check could pass
    App.update(installation_state="installed", debug_mode={"cmd": ["sleep", "1d"]}).where(
        App.id == app_row.id).execute()
    with pytest.raises(Conflict, match="debug"):
        requests.start_deploy(eventlog.SYSTEM, app_row.id, {"type": "image", "image": "x:2"})


def test_rollback_needs_a_deployment_that_went_live(app_row):
    import eventlog
    from deployments import requests, store
    failed = store.create(app_row.id, {"type": "image", "image": "x:2"}, None, image="x:2",
                          manifest=app_row.manifest)
    store.set_state(failed.id, "failed", reason="nope")
    with pytest.raises(BadRequest):
        requests.rollback(eventlog.SYSTEM, app_row.id, failed.id)
    good = store.create(app_row.id, {"type": "image", "image": "x:3"}, None, image="x:3", manifest=app_row.manifest)
    store.set_state(good.id, "live")
    requests.rollback(eventlog.SYSTEM, app_row.id, good.id)
    newest = store.list_for_app(app_row.id)[0]
    assert (newest.rollback_of, newest.image, newest.number, newest.state) == (good.id, "x:3", 3, "building")
    assert store.images_in_use(app_row.id) == {"x:3"}


def test_deployment_whose_task_ended_unfinished_shows_as_failed(app_row):
    from deployments import store
    from models import Task
    task = Task.create(type="app", body="deploy.build", args={}, pending=False, active=False,
                       error={"message": "crashed", "code": "crashed"})
    row = store.create(app_row.id, {"type": "image", "image": "x:2"}, None)
    store.update(row.id, task_id=task.id)
    [shown] = store.listing(app_row.id)
    assert (shown["state"], shown["reason"]) == ("failed", "crashed")
    assert store.by_id(row.id).state == "building"     # only shown so: a GET writes nothing
