"""Updates of Berth itself and the reboot routes, through the HTTP API of one real server (SQLite).

The release feed and the artifacts are served by the test (http.server on a free port of
127.0.0.1). An update runs as a task: a full platform backup on a real filesystem backup storage,
then the download, its sha256 check, and the staged release under the data dir. Nothing is
installed (that is the start-up step, tests/unit/platform_update) and nothing reboots: the reboot
route is only ever refused here (BERTH_ALLOW_REBOOT unset).

The tests run in order on the one server: each leaves the state the next one starts from.
"""
import hashlib
import json
import os
import shutil
import time
import types

import pytest

from support.harness import BerthServer, activate
from support.static_http import served

ARTIFACT = b"berth release artifact for the update tests\n" * 100


@pytest.fixture(scope="module")
def feed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("release-feed")
    (folder / "berth-7.0.0.tar.gz").write_bytes(ARTIFACT)
    with served(folder) as base:
        def publish(*releases):
            (folder / "feed.json").write_text(json.dumps({"releases": list(releases)}))
        yield types.SimpleNamespace(folder=folder, url=f"{base}/feed.json", publish=publish)


@pytest.fixture(scope="module")
def berth(feed, tmp_path_factory):
    marker = tmp_path_factory.mktemp("os") / "reboot-required"
    server = BerthServer(env={"BERTH_RELEASE_FEED": feed.url, "BERTH_ALLOW_REBOOT": "0",
                              "BERTH_REBOOT_REQUIRED_FILE": str(marker)}).start()
    server.marker = marker
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def owner(berth):
    return activate(berth)


@pytest.fixture(scope="module")
def backup_folder(owner, tmp_path_factory):
    folder = tmp_path_factory.mktemp("update-backups")
    set_backup_config(owner, {"provider": "filesystem", "backupFolder": str(folder), "format": "tgz",
                              "retentionSecs": 7 * 86400, "intervalSecs": 86400})
    return folder


def set_backup_config(api, body):
    r = api.post("/settings/backup_config", json=body)
    assert r.status_code == 200, r.text


def release(version, name="berth-7.0.0.tar.gz", sha256=None):
    return {"version": version, "url": name, "sha256": sha256 or hashlib.sha256(ARTIFACT).hexdigest(),
            "changelog": [f"Release {version}"]}


def wait_task(api, task_id, timeout=60):
    deadline = time.time() + timeout
    while True:
        task = api.get(f"/tasks/{task_id}").json()
        if not task["active"] and not task["pending"]:
            return task
        assert time.time() < deadline, f"task {task_id} still running: {task}"
        time.sleep(0.2)


def box(api):
    r = api.get("/cloudron/update")
    assert r.status_code == 200, r.text
    return r.json()["update"]["box"]


def box_backup_ids(api):
    r = api.get("/backups")
    assert r.status_code == 200, r.text
    return [b["id"] for b in r.json()["backups"]]


def updates_folder(berth):
    return os.path.join(berth.data_dir, "platform-updates")


def staged_files(berth):
    found = []
    for dirpath, _, names in os.walk(updates_folder(berth)):
        found += [os.path.relpath(os.path.join(dirpath, n), updates_folder(berth)) for n in names]
    return sorted(found)


def test_reboot_is_refused_without_the_variable_and_reports_the_os_marker(berth, owner):
    r = owner.post("/cloudron/reboot")
    assert r.status_code == 409 and "BERTH_ALLOW_REBOOT" in r.json()["message"], r.text
    assert owner.get("/cloudron/reboot").json() == {"rebootRequired": False}
    berth.marker.write_text("*** System restart required ***\n")
    try:
        assert owner.get("/cloudron/reboot").json() == {"rebootRequired": True}
    finally:
        berth.marker.unlink()


def test_nothing_to_update_before_a_check(owner):
    assert box(owner) is None
    r = owner.post("/cloudron/update", json={})
    assert r.status_code == 422 and "check_for_updates" in r.json()["message"], r.text


def test_check_shows_the_newest_release_above_the_running_one(feed, owner):
    feed.publish(release("0.1.0"), release("7.0.0"), release("6.5.0"))
    r = owner.post("/cloudron/check_for_updates")
    assert r.status_code == 200, r.text
    shown = r.json()["update"]["box"]
    assert shown["version"] == "7.0.0" and shown["changelog"] == ["Release 7.0.0"]
    assert shown["sourceTarballUrl"] == feed.url.replace("feed.json", "berth-7.0.0.tar.gz")
    assert shown["staged"] is False
    assert box(owner) == shown
    assert owner.get("/updater/updates").json()["updates"]["box"] == shown     # the Cloudron 7+ route too


def test_update_is_refused_when_backups_are_switched_off(owner, berth, backup_folder):
    set_backup_config(owner, {"provider": "noop", "format": "tgz", "retentionSecs": 1})
    try:
        r = owner.post("/cloudron/update", json={})
        assert r.status_code == 409 and "needs a good backup" in r.json()["message"], r.text
        r = owner.post("/cloudron/update", json={"skipBackup": True})
        assert r.status_code == 400 and "skipBackup" in r.json()["message"], r.text
    finally:
        set_backup_config(owner, {"provider": "filesystem", "backupFolder": str(backup_folder), "format": "tgz",
                                  "retentionSecs": 7 * 86400, "intervalSecs": 86400})
    assert staged_files(berth) == []


def test_failed_backup_stops_the_update_before_the_download(owner, berth, backup_folder):
    # The backup folder is replaced by a file after the config was saved: the backup fails.
    shutil.rmtree(backup_folder)
    backup_folder.write_text("not a folder")
    try:
        r = owner.post("/cloudron/update", json={})
        assert r.status_code == 202, r.text
        task = wait_task(owner, r.json()["taskId"])
        assert not task["success"] and "backup before the update failed" in task["error"]["message"], task
    finally:
        backup_folder.unlink()
        backup_folder.mkdir()
    assert staged_files(berth) == [] and box(owner)["staged"] is False


def test_bad_checksum_fails_after_the_backup_and_stages_nothing(feed, owner, berth, backup_folder):
    feed.publish(release("7.0.0", sha256="0" * 64))
    assert owner.post("/cloudron/check_for_updates").status_code == 200
    before = box_backup_ids(owner)
    r = owner.post("/cloudron/update", json={})
    assert r.status_code == 202, r.text
    task = wait_task(owner, r.json()["taskId"])
    assert not task["success"] and "does not match its checksum" in task["error"]["message"], task
    assert len(box_backup_ids(owner)) == len(before) + 1          # the backup was made first
    assert staged_files(berth) == []                             # no partial download left either
    assert [n for n in os.listdir(updates_folder(berth)) if n.startswith("release-")] == []
    assert box(owner)["staged"] is False
    assert owner.get("/cloudron/reboot").json() == {"rebootRequired": False}


def test_update_backs_up_then_stages_the_verified_release(feed, owner, berth, backup_folder):
    feed.publish(release("7.0.0"))
    assert owner.post("/cloudron/check_for_updates").json()["update"]["box"]["version"] == "7.0.0"
    r = owner.post("/cloudron/update", json={})
    assert r.status_code == 202, r.text
    task = wait_task(owner, r.json()["taskId"])
    assert task["success"], task
    backup_id = task["result"]["backupId"]
    assert backup_id in box_backup_ids(owner)                   # a good platform backup, listed

    shown = box(owner)
    assert shown["version"] == "7.0.0" and shown["staged"] is True
    assert shown["stagedRelease"]["backupId"] == backup_id and shown["stagedRelease"]["taskId"] == r.json()["taskId"]
    assert staged_files(berth) == ["release-7.0.0/berth-7.0.0.tar.gz", "staged.json"]
    with open(os.path.join(updates_folder(berth), "release-7.0.0", "berth-7.0.0.tar.gz"), "rb") as f:
        assert f.read() == ARTIFACT
    with open(os.path.join(updates_folder(berth), "staged.json")) as f:
        assert json.load(f)["sha256"] == hashlib.sha256(ARTIFACT).hexdigest()
    # A staged release waits for the next start: a restart is required, and it is not fetched twice.
    assert owner.get("/cloudron/reboot").json() == {"rebootRequired": True}
    for route in ("/cloudron/update", "/updater/update"):
        r = owner.post(route, json={})
        assert r.status_code == 409 and "already staged" in r.json()["message"], r.text


def test_unreachable_feed_keeps_the_known_release(feed, owner):
    (feed.folder / "feed.json").unlink()
    r = owner.post("/cloudron/check_for_updates")
    assert r.status_code == 424 and "release feed" in r.json()["message"], r.text
    assert box(owner)["version"] == "7.0.0"
