"""What Berth knows about its own updates: the pending release and the staged one.

The pending release (found by the last check) is the setting `platform_update`, so every server
process sees the same one. The staged release is a file under the data dir
(core.data_paths.platform_updates): `staged.json` and the verified artifact in `release-<version>/`. It is a file, not a
database row, because the start-up step that installs it (platform_update.apply) runs before the
server opens its database. `staged.json` is written last and atomically: it is the commit point, so
an artifact without a record is an unfinished download and never installed.
"""
import json
import os
import shutil

from core import data_paths, files
from models import Setting
from platform_update import feed

SETTING = "platform_update"
RECORD = "staged.json"
RELEASE_PREFIX = "release-"


def folder() -> str:
    """The folder, created (0700) for writers; readers use data_paths directly, so the start-up
    step creates nothing under a data dir the server has not set up yet."""
    path = data_paths.platform_updates()
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def pending() -> dict | None:
    """The release the last check found, unless Berth already runs it (or a newer one)."""
    info = Setting.read(SETTING)
    if not isinstance(info, dict) or not feed.is_newer(str(info.get("version")), feed.running_version()):
        return None
    return info


def set_pending(info: dict | None) -> None:
    Setting.put(SETTING, info)


def staged() -> dict | None:
    """The record of the release staged for the next start, unless Berth already runs it."""
    where = data_paths.platform_updates()
    try:
        with open(os.path.join(where, RECORD)) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not feed.is_newer(str(record.get("version")), feed.running_version()):
        return None
    if not os.path.isfile(os.path.join(where, str(record.get("file")))):
        return None
    return record


def write_staged(record: dict) -> None:
    """Commit a staged release (its artifact must already be in the folder), then remove artifacts
    of earlier stagings: only one release waits at a time."""
    files.write_atomic(os.path.join(folder(), RECORD), json.dumps(record, indent=2), mode=0o600)
    keep = record["file"].split("/")[0]
    for name in os.listdir(folder()):
        if name != keep and name.startswith(RELEASE_PREFIX):
            shutil.rmtree(os.path.join(folder(), name), ignore_errors=True)


def release_folder(version: str) -> str:
    """Where the artifact of `version` is downloaded; the artifact keeps its own file name there
    (pip reads a wheel's name and version from it)."""
    path = os.path.join(folder(), RELEASE_PREFIX + version)
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def finish(outcome: dict) -> None:
    """After the start-up step: the staged record moves to `last-apply.json` with its outcome."""
    record_path = os.path.join(folder(), RECORD)
    files.write_atomic(os.path.join(folder(), "last-apply.json"), json.dumps(outcome, indent=2), mode=0o600)
    if outcome.get("installed"):
        os.unlink(record_path)
        shutil.rmtree(os.path.dirname(os.path.join(folder(), str(outcome.get("file")))), ignore_errors=True)


def last_apply() -> dict | None:
    try:
        with open(os.path.join(data_paths.platform_updates(), "last-apply.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
