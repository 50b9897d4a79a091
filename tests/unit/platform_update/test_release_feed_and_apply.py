"""The release feed rules (platform_update.feed) over a local HTTP server, and the start-up step
that installs a staged release (platform_update.apply) — into a throw-away target folder with a
wheel the test writes, never into the running venv."""
import base64
import hashlib
import json
import os
import zipfile

import pytest

from core import config
from core.errors import DependencyFailed
from platform_update import apply, feed, state
from support.static_http import served

SHA = "ab" * 32




def test_running_version_is_the_installed_distribution():
    import importlib.metadata
    assert feed.running_version() == importlib.metadata.version("berth")


def test_newest_release_above_the_running_one(tmp_path):
    (tmp_path / "feed.json").write_text(json.dumps({"releases": [
        {"version": "0.9.0", "url": "old.tar.gz", "sha256": SHA},
        {"version": "1.10.0", "url": "berth-1.10.0.tar.gz", "sha256": SHA.upper(), "changelog": "One line"},
        {"version": "1.9.0", "url": "https://dl.example/berth-1.9.0.tar.gz", "sha256": SHA, "changelog": ["a"]},
        {"version": "2.0.0-beta", "url": "x.tar.gz", "sha256": SHA},        # not a dotted number
        {"version": "3.0.0", "url": "y.tar.gz", "sha256": "short"},         # cannot be verified
        {"version": "4.0.0", "url": "file:///etc/passwd", "sha256": SHA},   # not http(s)
        "junk"]}))
    with served(tmp_path) as base:
        newest = feed.newest_above("1.2.0", f"{base}/feed.json")
        assert newest == {"version": "1.10.0", "sourceTarballUrl": f"{base}/berth-1.10.0.tar.gz",
                          "sha256": SHA, "changelog": ["One line"]}
        assert feed.newest_above("1.10.0", f"{base}/feed.json") is None
        with pytest.raises(DependencyFailed, match="missing.json"):
            feed.newest_above("1.0.0", f"{base}/missing.json")


def test_no_feed_configured_is_a_dependency_failure(tmp_path):
    previous = config._current
    config.use(config.load({"BERTH_DATA_DIR": str(tmp_path)}))
    try:
        with pytest.raises(DependencyFailed, match="BERTH_RELEASE_FEED"):
            feed.releases()
    finally:
        config.use(previous)


def _wheel(folder, name, version):
    """A minimal pure-Python wheel of distribution `name` with one module."""
    path = os.path.join(folder, f"{name}-{version}-py3-none-any.whl")
    info = f"{name}-{version}.dist-info"
    files = {f"{name}.py": b"VERSION = %r\n" % version,
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
             f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    with zipfile.ZipFile(path, "w") as z:
        for arc, data in files.items():
            z.writestr(arc, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{arc},sha256={digest},{len(data)}")
        record.append(f"{name}-{version}.dist-info/RECORD,,")
        z.writestr(f"{name}-{version}.dist-info/RECORD", "\n".join(record) + "\n")
    return path


def _stage(db, version, artifact, sha256=None):
    name = f"{os.path.basename(state.release_folder(version))}/{os.path.basename(artifact)}"
    os.replace(artifact, os.path.join(state.folder(), name))
    with open(os.path.join(state.folder(), name), "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    state.write_staged({"version": version, "file": name, "sha256": sha256 or digest})
    return name


def test_apply_installs_the_staged_release_and_records_it(db, tmp_path):
    assert apply.apply_staged() is None                       # nothing staged: nothing to do
    wheel = _wheel(str(tmp_path), "berth_apply_probe", "99.0.0")
    name = _stage(db, "99.0.0", wheel)
    assert state.staged()["version"] == "99.0.0"
    target = tmp_path / "target"
    outcome = apply.apply_staged(pip_args=("--no-index", "--no-deps", "--target", str(target)))
    assert outcome["installed"] is True, outcome
    assert (target / "berth_apply_probe.py").read_text() == "VERSION = '99.0.0'\n"
    assert state.staged() is None and not os.path.exists(os.path.join(state.folder(), name))
    assert state.last_apply()["version"] == "99.0.0" and state.last_apply()["installed"] is True


def test_apply_refuses_an_artifact_changed_after_staging(db, tmp_path):
    wheel = _wheel(str(tmp_path), "berth_apply_probe", "99.0.1")
    _stage(db, "99.0.1", wheel, sha256="0" * 64)
    target = tmp_path / "target"
    outcome = apply.apply_staged(pip_args=("--no-index", "--no-deps", "--target", str(target)))
    assert outcome["installed"] is False and "sha256" in outcome["error"]
    assert not target.exists() and state.staged() is None


def test_a_release_not_newer_than_the_running_one_is_never_staged(db, tmp_path):
    wheel = _wheel(str(tmp_path), "berth_apply_probe", "0.0.1")
    _stage(db, "0.0.1", wheel)
    assert state.staged() is None and apply.apply_staged() is None


def test_the_box_autoupdate_schedule_queues_one_update_task(db, tmp_path):
    from models import Task
    from platform_update import updater
    assert updater.scheduled_update() is None                 # no feed: nothing to do
    (tmp_path / "feed").mkdir()
    (tmp_path / "feed" / "feed.json").write_text(json.dumps({"releases": [
        {"version": "99.1.0", "url": "berth-99.1.0.tar.gz", "sha256": SHA}]}))
    with served(tmp_path / "feed") as base:
        config.use(config.load({"BERTH_DATA_DIR": str(db), "BERTH_RELEASE_FEED": f"{base}/feed.json"}))
        task_id = updater.scheduled_update()
        task = Task.get_by_id(task_id)
        assert (task.body, task.args) == ("platform.update", {"version": "99.1.0"})
        assert updater.scheduled_update() is None             # one at a time (logged, never raised)
        assert state.pending()["version"] == "99.1.0"
