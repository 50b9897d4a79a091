"""The update task (tasks.registry `platform.update`): back up, download, verify, stage.

Order matters and each step must succeed before the next starts, so a failure leaves Berth as it
was: (1) a full platform backup through the backups area's own task body (the task holds the
`backup` lock, so no other backup runs beside it); (2) the artifact is downloaded to a partial file
while its sha256 is computed; (3) only a matching checksum renames it into place and writes the
staged record (platform_update.state). Nothing is installed here: the running server keeps its
code, and the start-up step (platform_update.apply) installs the staged release at the next start.
"""
import contextlib
import hashlib
import os
import urllib.parse
import urllib.request

import eventlog
from backups import get_backup
from backups import settings as backup_settings
from backups import task_bodies as backup_bodies
from core.times import iso, utcnow
from platform_update import state
from tasks.context import TaskContext

CHUNK = 1024 * 1024
TIMEOUT_SECS = 60


class UpdateFailed(Exception):
    """The update stopped before anything changed; the message says why."""


def backup_refusal() -> str | None:
    """Why the backup an update needs cannot be made, or None."""
    if backup_settings.get_config().get("provider") == "noop":
        return ("Backups are switched off (backup storage provider noop): an update needs a good backup "
                "first. Configure backups (POST /settings/backup_config) and try again")
    return None


def _backup(task: TaskContext) -> str:
    refusal = backup_refusal()
    if refusal:
        raise UpdateFailed(refusal)
    task.progress(5, "Backing up before the update")
    try:
        result = backup_bodies.full_backup(task)
    except Exception as e:  # noqa: BLE001 - any backup failure stops the update, with its words
        raise UpdateFailed(f"The backup before the update failed, nothing was changed: {e}") from None
    backup = get_backup(result["backupId"])
    if backup.state != "normal":
        raise UpdateFailed(f"The backup before the update ({backup.id}) is {backup.state}; nothing was changed")
    return backup.id


def _download(task: TaskContext, info: dict, target: str) -> None:
    part = target + ".part"
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(info["sourceTarballUrl"], timeout=TIMEOUT_SECS) as answer, open(part, "wb") as f:
            while chunk := answer.read(CHUNK):
                digest.update(chunk)
                f.write(chunk)
        if digest.hexdigest() != info["sha256"]:
            raise UpdateFailed(f"The release {info['version']} does not match its checksum (sha256 "
                               f"{digest.hexdigest()}, the feed says {info['sha256']}); nothing was staged")
        os.replace(part, target)
    except OSError as e:
        raise UpdateFailed(f"Cannot download {info['sourceTarballUrl']}: {e}; nothing was staged") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(part)


def update(task: TaskContext, version: str, **_: object) -> dict:
    """Result: {version, backupId, file, sha256}."""
    info = state.pending()
    if info is None or info.get("version") != version:
        raise UpdateFailed(f"Release {version} is no longer the pending update; check for updates again")
    backup_id = _backup(task)
    task.progress(70, f"Downloading release {version}")
    name = os.path.basename(urllib.parse.urlparse(info["sourceTarballUrl"]).path)
    if name in ("", ".", ".."):
        name = f"berth-{version}.tar.gz"
    folder = state.release_folder(version)
    try:
        _download(task, info, os.path.join(folder, name))
    except UpdateFailed:
        with contextlib.suppress(OSError):
            os.rmdir(folder)      # only when empty: an earlier staging of this version stays
        raise
    artifact = f"{os.path.basename(folder)}/{name}"
    record = {"version": version, "file": artifact, "sha256": info["sha256"], "changelog": info.get("changelog", []),
              "sourceTarballUrl": info["sourceTarballUrl"], "backupId": backup_id, "taskId": str(task.id),
              "stagedAt": iso(utcnow())}
    state.write_staged(record)
    eventlog.record("cloudron.update.staged", eventlog.SYSTEM, version=version, backupId=backup_id, taskId=str(task.id))
    task.progress(100, f"Release {version} is staged; it is installed when Berth next starts")
    return {"version": version, "backupId": backup_id, "file": artifact, "sha256": info["sha256"]}
