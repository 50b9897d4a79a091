"""The /cloudron/update, /cloudron/check_for_updates and /cloudron/reboot requests, and the
`box_autoupdate_pattern` schedule (tasks.registry action `box.autoupdate`)."""
import logging
import os

import apps.updates
import eventlog
import tasks
from core import commands, config
from core.errors import ApiError, BadRequest, Conflict
from models import Task
from platform_update import feed, state
from platform_update.task_bodies import backup_refusal

TASK_BODY = "platform.update"
log = logging.getLogger("berth.platform_update")


class AlreadyUpToDate(ApiError):
    status = 422


def box_update() -> dict | None:
    """The newer platform release known (and whether it is staged), or None."""
    info = state.pending()
    staged = state.staged()
    if info is None and staged is None:
        return None
    box = dict(info or {k: staged[k] for k in ("version", "changelog", "sourceTarballUrl", "sha256")})
    box["staged"] = staged is not None and staged["version"] == box["version"]
    if staged is not None:
        box["stagedRelease"] = {k: staged.get(k) for k in ("version", "stagedAt", "taskId", "backupId")}
    return box


def update_info() -> dict:
    """Cloudron's `update` object: `box` (the platform release, null when up to date; `staged` says
    whether it is downloaded and waits for the next start) plus one entry per app with a newer
    catalog version."""
    return {**apps.updates.available(), "box": box_update()}


def check_for_updates(actor: eventlog.Actor) -> dict:
    """Read the release feed now (424 when there is none or it cannot be read; the stored pending
    release is then kept) and store the newest release above the running version."""
    newest = feed.newest_above(feed.running_version())
    state.set_pending(newest)
    eventlog.record("cloudron.update.check", actor, version=newest["version"] if newest else None)
    return update_info()


def running_update() -> int | None:
    row = (Task.select(Task.id).where((Task.body == TASK_BODY) & ((Task.pending == True) | (Task.active == True)))  # noqa: E712
           .first())
    return row.id if row is not None else None


def start_update(actor: eventlog.Actor, body: dict) -> int:
    """Queue the update task (after checks that would make it fail at once)."""
    if body.get("skipBackup"):
        raise BadRequest("is not supported: Berth always backs up before it updates itself", "skipBackup")
    info = state.pending()
    if info is None:
        raise AlreadyUpToDate(f"No update available: Berth {feed.running_version()} is the newest release known "
                              "(POST /cloudron/check_for_updates reads the release feed)")
    staged = state.staged()
    if staged is not None and staged["version"] == info["version"]:
        raise Conflict(f"Release {info['version']} is already staged; it is installed when Berth next starts")
    running = running_update()
    if running is not None:
        raise Conflict(f"An update is already running (task {running})")
    refusal = backup_refusal()
    if refusal:
        raise Conflict(refusal)
    task_id = tasks.start("update", TASK_BODY, {"version": info["version"]}, locks=("backup",))
    eventlog.record("cloudron.update", actor, taskId=str(task_id), version=info["version"])
    return task_id


def reboot_required() -> bool:
    """The OS says so (its reboot-required marker file), or a staged release waits for a restart."""
    return os.path.exists(config.get().reboot_required_file) or state.staged() is not None


def reboot(actor: eventlog.Actor) -> None:
    """Reboot the machine, only where the operator allowed it (BERTH_ALLOW_REBOOT=1): a control
    plane in a container or on a shared host must not take the host down on an API call."""
    if not config.get().allow_reboot:
        raise Conflict("Rebooting from the API is not allowed on this server (set BERTH_ALLOW_REBOOT=1 to allow it)")
    eventlog.record("cloudron.reboot", actor)
    commands.spawn(["systemctl", "reboot"], stdin=commands.DEVNULL, stdout=commands.DEVNULL,
                   stderr=commands.DEVNULL, start_new_session=True)


def scheduled_update(fire_time: float | None = None) -> int | None:
    """On `box_autoupdate_pattern`: check the feed and start the update task when a newer release
    is not staged yet, as an admin would; the task still backs up first and only stages (the
    release is installed at the next start). Without a feed, or when backups are off, nothing
    starts; every refusal is logged, none raises (a schedule has nobody to answer)."""
    if not config.get().release_feed:
        return None
    try:
        check_for_updates(eventlog.SYSTEM)
        pending, staged = state.pending(), state.staged()
        if pending is None or (staged is not None and staged["version"] == pending["version"]):
            return None
        return start_update(eventlog.SYSTEM, {})
    except ApiError as e:
        log.warning("automatic platform update skipped: %s", e.message)
        return None
