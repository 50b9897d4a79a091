"""zstd backups through the API: a Berth server (SQLite) backs up an app of the busybox test image
on the real Docker engine into a real folder as `.tar.zst` (encrypted and not), restores it
byte-exact, and downloads it as stored. One server for the module."""
import io
import os
import shutil
import tarfile

import pytest
import zstandard

from support.apps_env import apps_berth, unique
from support.data_tree import populate
from support.data_tree import snapshot as tree

KEY = "zstd backups key"


def config(folder, key=None):
    return {"provider": "filesystem", "backupFolder": folder, "format": "zstd", "retentionSecs": 7 * 86400,
            "intervalSecs": 86400, "key": key}


@pytest.fixture(scope="module")
def env(parts, tmp_path_factory):
    with apps_berth(parts, tmp_path_factory) as berth:
        yield berth


@pytest.fixture(scope="module")
def app(env):
    app = env.install(unique("zst"))
    populate(os.path.join(env.app_dir(app["id"]), "data"))
    return app


def _mutate(data):
    with open(os.path.join(data, "docs/readme.txt"), "ab") as f:
        f.write(b"changed after the backup\n")
    os.remove(os.path.join(data, "blob.bin"))
    shutil.rmtree(os.path.join(data, "deep"))
    os.chmod(os.path.join(data, "bin/tool.sh"), 0o600)


@pytest.mark.parametrize("key", [KEY, None], ids=["encrypted", "plain"])
def test_zstd_backup_restores_the_app_byte_exact(key, env, app, tmp_path):
    folder = str(tmp_path)
    r = env.api.post("/settings/backup_config", json=config(folder, key))
    assert r.status_code == 200, r.text
    assert env.api.get("/settings/backup_config").json()["format"] == "zstd"

    data = os.path.join(env.app_dir(app["id"]), "data")
    task = env.run(env.api.post(f"/apps/{app['id']}/backup"))
    assert task["success"], task
    backup_id = task["result"]["backupId"]
    expected = tree(data)
    listed = env.api.get(f"/apps/{app['id']}/backups").json()["backups"]
    backup = next(b for b in listed if b["id"] == backup_id)
    assert (backup["format"], backup["state"]) == ("zstd", "normal"), backup
    stored = os.path.join(folder, backup_id + (".tar.zst.enc" if key else ".tar.zst"))
    assert os.path.isfile(stored)

    # Downloaded as stored; the plain one is a standard .tar.zst holding the app's files.
    r = env.api.get(f"/backups/{backup_id}/download")
    assert r.status_code == 200, r.text
    disposition = r.headers["Content-Disposition"]
    assert backup_id.replace("/", "_") + ".tar.zst" in disposition and (".enc" in disposition) == bool(key)
    with open(stored, "rb") as f:
        assert r.content == f.read()
    if not key:
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(r.content), read_across_frames=True)
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            assert any(m.name.endswith("docs/readme.txt") for m in tar)

    _mutate(data)
    assert tree(data) != expected
    task = env.run(env.api.post(f"/apps/{app['id']}/restore", json={"backupId": backup_id}))
    assert task["success"], task
    restored = env.wait_app(app["id"], "healthy after the restore", lambda a: a["health"] == "healthy")
    assert (restored["installationState"], restored["runState"]) == ("installed", "running")
    assert tree(data) == expected
