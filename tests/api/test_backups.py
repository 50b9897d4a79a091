"""Backups for real: Berth servers (SQLite) back up apps of the busybox test image running on the
real Docker engine behind their own nginx into a real folder, and restore, clone and recover
from them; everything is driven through the API and checked on disk, in the engine and through
the proxy.

One server is shared by most tests (each test installs its own apps); the whole-Cloudron
restore uses a source server that goes away and a fresh one. The full-disk test mounts a tmpfs
of a few MB (as root) and unmounts it in its teardown.
"""
import io
import os
import shutil
import socket
import sqlite3
import subprocess
import tarfile
import threading
import time

import pytest

import certificates
from support import images
from support.apps_env import DOMAIN, _berth, apps_berth, unique
from support.data_tree import populate
from support.data_tree import snapshot as tree
from support.harness import Api, BerthServer, proxy_env, require, stop_proxy

KEY = "correct horse battery staple"


# ---- helpers ------------------------------------------------------------------------------------

def mutate(root):
    with open(os.path.join(root, "docs/readme.txt"), "ab") as f:
        f.write(b"changed after the backup\n")
    os.remove(os.path.join(root, "blob.bin"))
    shutil.rmtree(os.path.join(root, "deep"))
    os.chmod(os.path.join(root, "bin/tool.sh"), 0o600)
    os.remove(os.path.join(root, "latest"))
    os.symlink("empty", os.path.join(root, "latest"))
    with open(os.path.join(root, "new.txt"), "w") as f:
        f.write("not in the backup")


def starts(data_dir):
    with open(os.path.join(data_dir, "starts")) as f:
        return f.read().splitlines()


def stored_files(folder):
    """Every file below the backup folder (relative), temp files of unfinished writes included."""
    found = set()
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            found.add(os.path.relpath(os.path.join(dirpath, name), folder))
    return found


def config(folder, key=KEY, **extra):
    return {"provider": "filesystem", "backupFolder": folder, "format": "tgz", "retentionSecs": 7 * 86400,
            "intervalSecs": 86400, "key": key, **extra}


def set_config(api, body):
    r = api.post("/settings/backup_config", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {}


def app_backups(env, app_id):
    r = env.api.get(f"/apps/{app_id}/backups")
    assert r.status_code == 200, r.text
    return r.json()["backups"]


def backup_app(env, app_id):
    task = env.run(env.api.post(f"/apps/{app_id}/backup"))
    assert task["success"], task
    return task


def wait_for(what, predicate, timeout=30, interval=0.1):
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.time() < deadline, f"never {what} within {timeout}s"
        time.sleep(interval)


def assert_stages_ok(result):
    for stage in ("snapshot", "upload", "verify"):
        assert result["stages"][stage]["outcome"] == "ok", result
        assert result["stages"][stage]["size"] > 0, result


# ---- fixtures -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def env(parts, tmp_path_factory):
    with apps_berth(parts, tmp_path_factory) as berth:
        yield berth


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return str(tmp_path_factory.mktemp("backup-folder"))


@pytest.fixture(scope="module")
def backed_up(env, folder):
    """An app with every kind of file in its data folder, backed up (encrypted tgz): its id, the
    tree and `starts` at backup time, and the backup."""
    set_config(env.api, config(folder))
    app = env.install(unique("bk"), env={"GREETING": "one"}, label="Before")
    data = os.path.join(env.app_dir(app["id"]), "data")
    populate(data)
    task = backup_app(env, app["id"])
    assert_stages_ok(task["result"])
    listed = app_backups(env, app["id"])
    assert [b["id"] for b in listed] == [task["result"]["backupId"]]
    return {"app": app, "data": data, "tree": tree(data), "starts": starts(data), "backup": listed[0]}


# ---- configuration ------------------------------------------------------------------------------

def test_config_defaults_probe_and_masked_secrets(env, tmp_path):
    r = env.api.get("/settings/backup_config")
    assert r.status_code == 200, r.text
    cfg = r.json()
    assert (cfg["provider"], cfg["format"], cfg["retentionSecs"], cfg["intervalSecs"]) == \
        ("filesystem", "tgz", 7 * 86400, 86400)
    assert cfg["backupFolder"] == os.path.join(env.data_dir, "backups")
    assert not cfg.get("key")

    # The storage is tested first; its own error comes back (424) and nothing is saved. The
    # folder is never created by the test of the storage: it must exist.
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    r = env.api.post("/settings/backup_config", json=config(str(blocker / "backups")))
    assert r.status_code == 424, r.text
    assert "does not exist" in r.json()["message"], r.text
    r = env.api.post("/settings/backup_config", json=config(str(tmp_path / "missing")))
    assert r.status_code == 424 and "does not exist" in r.json()["message"], r.text
    assert not (tmp_path / "missing").exists()
    assert env.api.get("/settings/backup_config").json() == cfg
    r = env.api.post("/settings/backup_config", json=config(str(tmp_path), intervalSecs=3600))
    assert r.status_code == 400 and "intervalSecs" in r.json()["message"], r.text
    r = env.api.post("/settings/backup_config", json=config(str(tmp_path), schedulePattern="61 * * * * *"))
    assert r.status_code == 400 and "schedulePattern" in r.json()["message"], r.text

    # Secrets are masked; posting the mask back keeps the stored one.
    (tmp_path / "kept").mkdir()
    (tmp_path / "plain").mkdir()
    set_config(env.api, config(str(tmp_path / "kept"), key="s3cret-key", schedulePattern="00 15 02 * * *"))
    shown = env.api.get("/settings/backup_config").json()
    assert shown["key"] == "\u25cf" * 8 and shown["schedulePattern"] == "00 15 02 * * *", shown
    set_config(env.api, {**shown, "retentionSecs": 3600})
    again = env.api.get("/settings/backup_config").json()
    assert again["key"] == "\u25cf" * 8 and again["retentionSecs"] == 3600, again
    # The mask really kept the key: a backup made now is encrypted.
    task = env.run(env.api.post("/backups/create"))
    assert task["success"], task
    assert os.path.exists(os.path.join(tmp_path, "kept", task["result"]["backupId"] + ".tar.gz.enc"))
    set_config(env.api, config(str(tmp_path / "plain"), key=None))
    assert not env.api.get("/settings/backup_config").json().get("key")


# ---- app backup, restore, clone -----------------------------------------------------------------

def test_restore_brings_the_app_back_exactly(env, backed_up):
    app_id, data = backed_up["app"]["id"], backed_up["data"]
    backup = backed_up["backup"]
    assert (backup["type"], backup["state"], backup["format"]) == ("app", "normal", "tgz")
    assert backup["manifest"]["id"] == "io.berth.test.httpd" and backup["version"] == "1.0.0"
    assert backup["id"].split("/")[1].startswith(f"app_{app_id}_"), backup

    mutate(data)
    task = env.run(env.api.post(f"/apps/{app_id}/configure/env", json={"env": {"GREETING": "two"}}))
    assert task["success"], task
    r = env.api.post(f"/apps/{app_id}/configure/label", json={"label": "After"})
    assert r.status_code == 200, r.text
    assert tree(data) != backed_up["tree"]
    container_before = env.container(app_id)["Id"]

    task = env.run(env.api.post(f"/apps/{app_id}/restore", json={"backupId": backup["id"]}))
    assert task["success"], task
    app = env.wait_app(app_id, "healthy after the restore", lambda a: a["health"] == "healthy")
    assert (app["installationState"], app["runState"], app["error"]) == ("installed", "running", None)
    # Every byte, mode, owner and mtime as backed up; the app itself appended one start.
    assert tree(data) == backed_up["tree"]
    assert starts(data)[:-1] == backed_up["starts"]
    # The container was re-created with the backed-up configuration.
    assert env.container(app_id)["Id"] != container_before
    assert (app["env"], app["label"]) == ({"GREETING": "one"}, "Before")
    assert env.container_env(app["fqdn"])["GREETING"] == "one"


def test_clone_makes_a_second_app_from_a_backup(env, backed_up):
    source, backup = backed_up["app"], backed_up["backup"]
    location = unique("clone")
    r = env.api.post(f"/apps/{source['id']}/clone",
                     json={"backupId": backup["id"], "location": location, "domain": DOMAIN})
    assert r.status_code == 201, r.text
    assert set(r.json()) == {"id", "taskId"}
    clone_id = r.json()["id"]
    env.app_ids.add(clone_id)
    assert clone_id != source["id"]
    task = env.wait_task(r.json()["taskId"])
    assert task["success"], task
    clone = env.wait_app(clone_id, "healthy", lambda a: a["health"] == "healthy")
    assert (clone["installationState"], clone["fqdn"]) == ("installed", f"{location}.{DOMAIN}")
    assert clone["env"] == {"GREETING": "one"} and clone["manifest"] == source["manifest"]
    status, _, body = env.curl(clone["fqdn"])
    assert status == 200 and images.INDEX_MARKER in body
    assert env.container_env(clone["fqdn"])["GREETING"] == "one"
    clone_data = os.path.join(env.app_dir(clone_id), "data")
    assert tree(clone_data) == backed_up["tree"]
    assert starts(clone_data)[:-1] == backed_up["starts"]
    # The source is untouched, and the clone's location cannot be taken twice.
    assert env.app(source["id"])["installationState"] == "installed"
    r = env.api.post(f"/apps/{source['id']}/clone",
                     json={"backupId": backup["id"], "location": location, "domain": DOMAIN})
    assert r.status_code == 409, r.text
    r = env.api.post(f"/apps/{source['id']}/clone",
                     json={"backupId": "2020-01-01-000000-000/nope", "location": unique("x"),
                           "domain": DOMAIN})
    assert r.status_code == 404, r.text


def test_wrong_key_fails_the_restore_and_touches_nothing(env, backed_up, folder):
    app_id, data = backed_up["app"]["id"], backed_up["data"]
    before = tree(data, skip=())
    container = env.container(app_id)["Id"]
    set_config(env.api, config(folder, key="not the key it was made with"))
    try:
        task = env.run(env.api.post(f"/apps/{app_id}/restore", json={"backupId": backed_up["backup"]["id"]}))
        assert not task["success"], task
        assert "wrong encryption key" in task["error"]["message"], task
        app = env.app(app_id)
        assert (app["installationState"], app["error"], app["taskId"]) == ("installed", None, None), app
        assert env.container(app_id)["Id"] == container and env.container(app_id)["State"]["Running"]
        assert tree(data, skip=()) == before
        assert sorted(os.listdir(os.path.dirname(data))) == ["data"]   # no staging folder left
    finally:
        set_config(env.api, config(folder))


def test_restore_refuses_bad_requests(env, backed_up):
    app_id = backed_up["app"]["id"]
    r = env.api.post(f"/apps/{app_id}/restore", json={"backupId": "2020-01-01-000000-000/nope"})
    assert r.status_code == 404, r.text
    r = env.api.post(f"/apps/{app_id}/restore", json={})
    assert r.status_code == 400 and "backupId" in r.json()["message"], r.text
    r = env.api.post("/apps/no-such-app/backup")
    assert r.status_code == 404, r.text


def test_rsync_backups_upload_only_changes_and_restore_exactly(env, folder):
    app = env.install(unique("rs"))
    data = os.path.join(env.app_dir(app["id"]), "data")
    populate(data)
    set_config(env.api, config(folder, format="rsync"))
    try:
        first = backup_app(env, app["id"])["result"]
        assert_stages_ok(first)
        with open(os.path.join(data, "docs/readme.txt"), "ab") as f:
            f.write(b"one more line\n")
        second = backup_app(env, app["id"])["result"]
        assert_stages_ok(second)
        # Only the changed file (and the index) went up again; the rest was linked/copied.
        assert second["stages"]["upload"]["uploadedBytes"] < first["stages"]["upload"]["uploadedBytes"] / 4, \
            (first["stages"]["upload"], second["stages"]["upload"])
        expected, expected_starts = tree(data), starts(data)
        backups = app_backups(env, app["id"])
        assert [b["id"] for b in backups] == [second["backupId"], first["backupId"]]
        assert {b["format"] for b in backups} == {"rsync"}
        r = env.api.get(f"/backups/{second['backupId']}/download")
        assert r.status_code == 400 and "rsync" in r.json()["message"], r.text
        # Retention (0 s: each app's newest backup stays) removes the first; the sweep of the
        # shared object store then keeps every object the second references (restored below).
        set_config(env.api, config(folder, format="rsync", retentionSecs=0))
        cleaned = env.run(env.api.post("/backups/cleanup"))
        assert cleaned["success"] and first["backupId"] in cleaned["result"]["removed"], cleaned
        assert cleaned["result"]["sweep"]["outcome"] == "ok", cleaned
        assert [b["id"] for b in app_backups(env, app["id"])] == [second["backupId"]]

        mutate(data)
        task = env.run(env.api.post(f"/apps/{app['id']}/restore", json={"backupId": second["backupId"]}))
        assert task["success"], task
        env.wait_app(app["id"], "healthy", lambda a: a["health"] == "healthy")
        assert tree(data) == expected
        assert starts(data)[:-1] == expected_starts
    finally:
        set_config(env.api, config(folder))


def test_scheduled_backup_runs_on_time(env, folder):
    def newest_box():
        boxes = env.api.get("/backups").json()["backups"]
        return boxes[0]["id"] if boxes else None
    before = newest_box()
    set_config(env.api, config(folder, schedulePattern="*/2 * * * * *"))
    try:
        wait_for("made a scheduled backup", lambda: newest_box() not in (None, before), timeout=30,
                 interval=0.2)
    finally:
        set_config(env.api, config(folder))
    # A run that started just before the schedule changed finishes before the next test.
    def idle():
        return not any(t["active"] or t["pending"]
                       for t in env.api.get("/tasks", params={"type": "backup"}).json()["tasks"])
    wait_for("no backup running", idle)
    tasks = env.api.get("/tasks", params={"type": "backup"}).json()["tasks"]
    assert any(t["success"] and (t["result"] or {}).get("backupId") == newest_box() for t in tasks), tasks


# ---- failures leave no good-looking backup ------------------------------------------------------

def _slow_app(env):
    """An app whose data folder takes long to back up: a 64 GiB sparse file (no disk used)."""
    app = env.install(unique("slow"))
    data = os.path.join(env.app_dir(app["id"]), "data")
    with open(os.path.join(data, "huge.sparse"), "wb") as f:
        f.truncate(64 << 30)
    return app, data


def _wait_uploading(env, folder, task_id):
    """Until the task writes its archive (a temp file of an unfinished write is in the folder)."""
    def uploading():
        task = env.api.get(f"/tasks/{task_id}").json()
        assert task["active"] or task["pending"], task
        return any(os.path.basename(p).startswith(".berth-tmp-") for p in stored_files(folder))
    wait_for("started uploading", uploading, timeout=30, interval=0.05)


def _no_partial_data(env, folder):
    """Cleanup leaves only the files of `normal` backups (and their metadata) in the folder."""
    task = env.run(env.api.post("/backups/cleanup"))
    assert task["success"], task
    files = stored_files(folder)
    assert not [f for f in files if os.path.basename(f).startswith(".berth-tmp-")], files
    return files


def test_stop_during_a_backup_leaves_no_normal_backup(env, folder):
    set_config(env.api, config(folder))
    app, data = _slow_app(env)
    r = env.api.post(f"/apps/{app['id']}/backup")
    assert r.status_code == 202, r.text
    task_id = r.json()["taskId"]
    _wait_uploading(env, folder, task_id)
    assert env.api.post(f"/tasks/{task_id}/stop").status_code == 204
    task = env.wait_task(task_id)
    assert not task["success"] and task["error"]["code"] == "stopped", task
    assert app_backups(env, app["id"]) == []
    assert env.app(app["id"])["installationState"] == "installed"
    files = _no_partial_data(env, folder)
    assert not [f for f in files if f"app_{app['id']}_" in f], files

    os.remove(os.path.join(data, "huge.sparse"))
    task = backup_app(env, app["id"])
    assert_stages_ok(task["result"])
    assert [b["id"] for b in app_backups(env, app["id"])] == [task["result"]["backupId"]]


def test_server_killed_during_a_backup_leaves_no_normal_backup(env, folder):
    set_config(env.api, config(folder))
    app, data = _slow_app(env)
    boxes_before = env.api.get("/backups").json()["backups"]
    r = env.api.post("/backups/create")
    assert r.status_code == 202, r.text
    task_id = r.json()["taskId"]
    _wait_uploading(env, folder, task_id)
    env.server.kill()
    env.start()   # same data dir, database and nginx

    task = env.wait_task(task_id, timeout=30)
    assert not task["success"] and task["error"]["code"] == "crashed", task
    assert app_backups(env, app["id"]) == []
    assert env.api.get("/backups").json()["backups"] == boxes_before
    files = _no_partial_data(env, folder)
    assert not [f for f in files if f"app_{app['id']}_" in f], files

    os.remove(os.path.join(data, "huge.sparse"))
    task = env.run(env.api.post("/backups/create"))
    assert task["success"], task
    assert_stages_ok(task["result"])
    box = env.api.get("/backups").json()["backups"][0]
    assert box["id"] == task["result"]["backupId"] and box["state"] == "normal"
    assert [b["id"] for b in app_backups(env, app["id"])][0] in box["dependsOn"]


@pytest.fixture
def tiny_disk(tmp_path):
    require("root (to mount a tmpfs)", os.geteuid() == 0)
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], check=True)
    try:
        yield str(mount)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_fails_the_backup_with_the_storage_message(env, folder, tiny_disk):
    app = env.install(unique("full"))
    data = os.path.join(env.app_dir(app["id"]), "data")
    with open(os.path.join(data, "random.bin"), "wb") as f:
        f.write(os.urandom(8 << 20))
    set_config(env.api, config(tiny_disk, key=None))   # the probe fits; the backup will not
    try:
        r = env.api.post(f"/apps/{app['id']}/backup")
        task = env.run(r)
        assert not task["success"], task
        assert "No space left on device" in task["error"]["message"], task
        assert task["error"]["message"].startswith("upload of app "), task
        assert app_backups(env, app["id"]) == []
        assert not [f for f in stored_files(tiny_disk) if f.endswith(".tar.gz")], stored_files(tiny_disk)
        # Nobody was watching: a notification says so.
        r = env.api.get("/notifications", params={"acknowledged": "false"})
        assert r.status_code == 200, r.text
        note = next(n for n in r.json()["notifications"] if "No space left on device" in n["message"])
        assert note["title"] == "App backup failed" and note["acknowledged"] is False
        r = env.api.post(f"/notifications/{note['id']}", json={"acknowledged": True})
        assert r.status_code == 204, r.text
        assert env.api.get(f"/notifications/{note['id']}").json()["notification"]["acknowledged"] is True
        unacked = env.api.get("/notifications", params={"acknowledged": "false"}).json()["notifications"]
        assert note["id"] not in [n["id"] for n in unacked]
    finally:
        set_config(env.api, config(folder))


# ---- the whole Cloudron -------------------------------------------------------------------------

def test_box_backup_restores_into_a_fresh_instance(parts, tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("box-backups"))
    source = _berth(parts, tmp_path_factory)
    target = _berth(parts, tmp_path_factory)
    try:
        source.start()
        token = source.api.token
        r = source.api.post("/users", json={"username": "alice", "email": "alice@example.com",
                                            "password": "Alice-pass-1"})
        assert r.status_code == 201, r.text
        alice = r.json()["id"]
        r = source.api.post("/groups", json={"name": "crew"})
        assert r.status_code == 201, r.text
        group = r.json()["id"]
        r = source.api.put(f"/groups/{group}/members", json={"userIds": [alice]})
        assert r.status_code == 200, r.text
        app = source.install(unique("box"), env={"GREETING": "restored"})
        data = os.path.join(source.app_dir(app["id"]), "data")
        populate(data)
        set_config(source.api, config(folder))

        first = source.run(source.api.post("/backups/create"))
        assert first["success"], first
        # Retention 0: the next full backup's prune removes the first (nothing depends on it).
        set_config(source.api, config(folder, retentionSecs=0))
        task = source.run(source.api.post("/backups/create"))
        assert task["success"], task
        result = task["result"]
        assert_stages_ok(result)
        prune = result["stages"]["prune"]
        assert (prune["outcome"], prune["removed"]) == ("ok", 2), result
        boxes = source.api.get("/backups").json()["backups"]
        assert [b["id"] for b in boxes] == [result["backupId"]]
        box = boxes[0]
        app_backup_ids = [b["id"] for b in app_backups(source, app["id"])]
        assert box["type"] == "box" and box["dependsOn"] == app_backup_ids and len(app_backup_ids) == 1
        first_tag = first["result"]["backupId"].split("/")[0]
        assert not [f for f in stored_files(folder) if f.startswith(first_tag)], stored_files(folder)
        # Retention keeps what the kept box backup depends on, however old, beside the newest.
        alone = backup_app(source, app["id"])["result"]["backupId"]
        cleaned = source.run(source.api.post("/backups/cleanup"))
        assert cleaned["success"] and cleaned["result"]["removed"] == [], cleaned
        assert [b["id"] for b in app_backups(source, app["id"])] == [alone] + app_backup_ids
        # A tgz backup downloads as stored.
        r = source.api.get(f"/backups/{box['id']}/download")
        assert r.status_code == 200, r.text
        with open(os.path.join(folder, box["id"] + ".tar.gz.enc"), "rb") as f:
            assert r.content == f.read()
        expected = tree(data)
        source.close()   # the old server is gone: server, containers, nginx and data dir

        target.server = BerthServer(data_dir=target.data_dir, env=target.env).start()
        anon = Api(target.server.api)
        body = {"backupConfig": {"provider": "filesystem", "backupFolder": folder, "format": "tgz",
                                 "key": "a wrong key"},
                "backupId": box["id"], "version": box["version"]}

        def restored():
            status = anon.get("/cloudron/status").json()
            return None if status["restore"]["active"] else status
        assert anon.post("/cloudron/restore", json=body).status_code == 200
        status = wait_for("finished restoring", restored, timeout=30, interval=0.2)
        assert "wrong encryption key" in (status["restore"]["errorMessage"] or ""), status
        assert status["activated"] is False
        assert not os.path.exists(os.path.join(target.data_dir, "apps"))

        r = anon.post("/cloudron/restore", json={**body, "version": "0.9.0"})
        assert r.status_code == 409, r.text
        body["backupConfig"]["key"] = KEY
        r = anon.post("/cloudron/restore", json=body)
        assert r.status_code == 200 and r.json() == {}, r.text
        assert anon.post("/cloudron/restore", json=body).status_code == 409   # one at a time
        status = wait_for("finished restoring", restored, timeout=90, interval=0.2)
        assert status["restore"]["errorMessage"] is None and status["activated"] is True, status

        target.api = Api(target.server.api, token)   # the old owner's session came back too
        users = {u["username"]: u for u in target.api.get("/users").json()["users"]}
        assert set(users) == {"owner", "alice"}
        groups = target.api.get("/groups").json()["groups"]
        assert [(g["name"], g["userIds"]) for g in groups] == [("crew", [alice])]
        assert [d["domain"] for d in target.api.get("/domains").json()["domains"]] == [DOMAIN]
        target.app_ids.add(app["id"])
        restored_app = target.wait_app(app["id"], "running again", timeout=60, predicate=lambda a: (
            a["installationState"], a["health"]) == ("installed", "healthy"))
        assert restored_app["env"] == {"GREETING": "restored"}
        assert tree(os.path.join(target.app_dir(app["id"]), "data")) == expected
        status, _, page = target.curl(restored_app["fqdn"])
        assert status == 200 and images.INDEX_MARKER in page
        assert target.container_env(restored_app["fqdn"])["GREETING"] == "restored"
        assert [b["id"] for b in target.api.get("/backups").json()["backups"]] == [box["id"]]
        r = anon.post("/cloudron/restore", json=body)
        assert r.status_code == 409, r.text
    finally:
        source.close()
        target.close()


def _finished(api, task_id, timeout=60):
    def done():
        task = api.get(f"/tasks/{task_id}").json()
        return None if task["active"] or task["pending"] else task
    return wait_for(f"task {task_id} finished", done, timeout=timeout, interval=0.2)


def _restored(anon, timeout=60):
    def done():
        status = anon.get("/cloudron/status").json()
        return None if status["restore"]["active"] else status
    return wait_for("finished restoring", done, timeout=timeout, interval=0.2)


def _failed_backup(api):
    """A backup that fails (noop storage keeps nothing), which raises a notification."""
    set_config(api, {"provider": "noop", "format": "tgz", "retentionSecs": 1})
    task = _finished(api, api.post("/backups/create").json()["taskId"])
    assert not task["success"] and "noop" in task["error"]["message"], task


def test_box_backup_on_postgresql(postgres, tmp_path):
    """pg_dump snapshot -> restore into a fresh PostgreSQL-backed instance; a SQLite-backed one
    refuses it with a clear message and stays as it was."""
    folder = str(tmp_path / "backups")
    os.mkdir(folder)
    servers = []

    def server(database_url=None):
        data_dir = tmp_path / f"berth{len(servers)}"
        data_dir.mkdir()
        servers.append(BerthServer(database_url=database_url, data_dir=str(data_dir), env=proxy_env()))
        return servers[-1].start()
    try:
        source = server(postgres.new_database())
        r = Api(source.api).post("/cloudron/activate", json={"username": "owner", "password": "Owner-pass-1",
                                                             "email": "owner@example.com"})
        assert r.status_code == 201, r.text
        api = Api(source.api, r.json()["token"])
        assert api.post("/groups", json={"name": "pg-crew"}).status_code == 201
        _failed_backup(api)
        set_config(api, config(folder))
        task = _finished(api, api.post("/backups/create").json()["taskId"])
        assert task["success"], task
        assert task["result"]["backups"][-1]["stages"]["snapshot"]["database"] == "postgresql"
        body = {"backupConfig": {"provider": "filesystem", "backupFolder": folder, "format": "tgz",
                                 "key": KEY},
                "backupId": task["result"]["backupId"], "version": "1.0.0"}

        sqlite_target = Api(server().api)
        assert sqlite_target.post("/cloudron/restore", json=body).status_code == 200
        status = _restored(sqlite_target)
        assert "PostgreSQL" in (status["restore"]["errorMessage"] or ""), status
        assert status["activated"] is False

        target = Api(server(postgres.new_database()).api)
        assert target.post("/cloudron/restore", json=body).status_code == 200
        status = _restored(target)
        assert status["restore"]["errorMessage"] is None and status["activated"] is True, status
        restored = target.with_token(api.token)
        assert [g["name"] for g in restored.get("/groups").json()["groups"]] == ["pg-crew"]
        assert [u["username"] for u in restored.get("/users").json()["users"]] == ["owner"]
        # Sequences continue after the restored rows: a new notification gets a fresh id.
        assert len(restored.get("/notifications").json()["notifications"]) == 1
        _failed_backup(restored)
        notes = restored.get("/notifications").json()["notifications"]
        assert len(notes) == 2 and len({n["id"] for n in notes}) == 2, notes
    finally:
        for s in servers:
            s.stop()
            stop_proxy(s.data_dir)


# ---- security: what a box backup holds, and the restore entry before activation -----------------

def _activated_server(env=None):
    server = BerthServer(env=env).start()
    r = Api(server.api).post("/cloudron/activate", json={"username": "owner", "password": "Owner-pass-1",
                                                         "email": "owner@example.com"})
    assert r.status_code == 201, r.text
    return server, Api(server.api, r.json()["token"])


def _files_of_tgz(content):
    """The bytes of every file in a downloaded (unencrypted) tgz backup, concatenated."""
    with tarfile.open(fileobj=io.BytesIO(content), mode="r:gz") as tar:
        return b"".join(tar.extractfile(m).read() for m in tar.getmembers() if m.isfile())


def test_admin_cannot_download_a_box_backup_and_it_holds_no_private_keys_or_storage_secrets(s3):
    """Finding 4: an admin downloaded the box backup and read the TLS private keys and the S3
    secret (and the owner's password hash) from its database. Now the download is owner-only, and
    an unencrypted box backup holds neither private keys nor storage secrets; restoring it into a
    fresh instance re-creates the certificates (uploaded ones are named in a notification) and
    the users log in with their passwords as before."""
    bucket = s3.make_bucket(unique("box-secrets").lower())
    source, owner = _activated_server()
    target = None
    try:
        assert owner.post("/domains", json={"domain": "made.test", "provider": "noop", "config": {}}).status_code == 201
        cert, key = certificates.generate_self_signed("uploaded.test")
        r = owner.post("/domains", json={"domain": "uploaded.test", "provider": "noop", "config": {},
                                         "fallbackCertificate": {"cert": cert, "key": key}})
        assert r.status_code == 201, r.text
        r = owner.post("/users", json={"username": "anna", "email": "anna@example.com", "password": "Anna-pass-1",
                                       "role": "admin"})
        assert r.status_code == 201, r.text
        r = Api(source.api).post("/cloudron/login", json={"username": "anna", "password": "Anna-pass-1"})
        assert r.status_code == 200, r.text
        admin = Api(source.api, r.json()["token"])
        set_config(owner, s3.config(bucket))            # no key: the backup is not encrypted
        task = _finished(owner, owner.post("/backups/create").json()["taskId"])
        assert task["success"], task
        box = owner.get("/backups").json()["backups"][0]
        assert box["id"] == task["result"]["backupId"]

        r = admin.get(f"/backups/{box['id']}/download")
        assert r.status_code == 403, r.text
        r = owner.get(f"/backups/{box['id']}/download")
        assert r.status_code == 200, r.text
        stored = _files_of_tgz(r.content)
        assert b"Owner-pass-1" not in stored and b"BEGIN CERTIFICATE" in stored   # the database is there
        assert b"PRIVATE KEY" not in stored
        assert s3.secret_key.encode() not in stored and b"secretAccessKey" not in stored
        source.stop()

        target = BerthServer().start()
        anon = Api(target.api)
        r = anon.post("/cloudron/restore", json={"backupConfig": s3.config(bucket), "backupId": box["id"],
                                                 "version": box["version"]})
        assert r.status_code == 200, r.text
        status = _restored(anon)
        assert status["restore"]["errorMessage"] is None and status["activated"] is True, status
        r = anon.post("/cloudron/login", json={"username": "owner", "password": "Owner-pass-1"})
        assert r.status_code == 200, r.text
        restored = anon.with_token(r.json()["token"])
        notes = restored.get("/notifications").json()["notifications"]
        assert [n["message"] for n in notes if "certificates" in n["title"]] == [
            "The restored backup was not encrypted, so it holds no private keys. These domains now serve a "
            "self-signed certificate instead of the one that was uploaded: uploaded.test"], notes
        db = sqlite3.connect(f"file:{os.path.join(target.data_dir, 'berth.db')}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT domain, fallback_key, fallback_generated FROM domain ORDER BY domain").fetchall()
        finally:
            db.close()
        assert [(d, generated) for d, _, generated in rows] == [("made.test", 1), ("uploaded.test", 1)]
        assert all(k.startswith("-----BEGIN") and k != key for _, k, _ in rows), rows
        assert restored.get("/settings/backup_config").json()["secretAccessKey"] == "\u25cf" * 8
    finally:
        source.cleanup()
        if target is not None:
            target.cleanup()


class _Listener:
    """A TCP listener on 127.0.0.1 that counts the connections it gets: what an SSRF would reach."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def guarded_fresh():
    """A fresh, not activated server that refuses local storage endpoints, as in production."""
    server = BerthServer(env={"BERTH_ALLOW_LOCAL_STORAGE_ENDPOINTS": "0"}).start()
    yield server
    server.cleanup()


def test_unauthenticated_restore_into_a_missing_folder_creates_nothing(guarded_fresh, tmp_path):
    """Finding 5: before activation anyone could make Berth `mkdir -p` any folder as root (and
    write a probe file into it). Now the restore only reads the storage; fields a fresh instance
    does not need are ignored."""
    anon = Api(guarded_fresh.api)
    before = sorted(os.listdir(tmp_path))
    r = anon.post("/cloudron/restore", json={
        "backupConfig": {"provider": "filesystem", "format": "rsync", "backupFolder": str(tmp_path / "a" / "b"),
                         "retentionSecs": "ignored", "schedulePattern": "ignored"},
        "backupId": "2024-01-01-000000-000/box_2024-01-01-000000-000_v1.0.0", "version": "1.0.0",
        "sysinfoConfig": {"provider": "fixed", "ip": "ignored"}, "skipDnsSetup": True})
    assert r.status_code == 400 and "backupId" in r.json()["message"], r.text
    assert sorted(os.listdir(tmp_path)) == before == []
    status = anon.get("/cloudron/status").json()
    assert status["activated"] is False and status["restore"]["active"] is False, status


def test_unauthenticated_restore_from_a_loopback_s3_endpoint_is_refused_unsent(guarded_fresh):
    """Finding 5: before activation anyone could make Berth send signed S3 requests to any URL
    (loopback, the cloud metadata service) and read the answer back in the error."""
    listener = _Listener()
    try:
        r = Api(guarded_fresh.api).post("/cloudron/restore", json={
            "backupConfig": {"provider": "minio", "format": "tgz", "endpoint": f"http://127.0.0.1:{listener.port}",
                             "bucket": "b", "accessKeyId": "a", "secretAccessKey": "s"},
            "backupId": "x/box_1", "version": "1.0.0"})
        assert r.status_code == 400 and "endpoint" in r.json()["message"], r.text
        time.sleep(0.5)
        assert listener.connections == 0
    finally:
        listener.close()
