"""scheduler: the manifest's cron entries (Cloudron's format, `addons.scheduler` =
{name: {schedule: "<cron>", command: "<shell command>"}}) run inside the app's container.

Each entry is a schedule of the task engine (tasks.schedules, so it survives restarts and fires
once across every Berth process), named `app-cron:<app id>:<hash of the entry name>` (the
schedules table allows 64 characters) and calling the action `addons.scheduler_run` (this
module's `run`). setup replaces the app's entries (an update may add, change or drop some),
teardown removes them all.

A run executes `/bin/sh -c <command>` in the app's container in the background, its output sent
to the container's own stdout and stderr (/proc/1/fd/1 and 2) so it is in the app's log. In the
background, because the action runs on the scheduler's few threads in the server process: a
command that runs for minutes must not hold one. A stopped app's entries are skipped.
"""
import hashlib
import logging
from collections.abc import Callable
from typing import Any

import containers
from core.errors import BadRequest
from models.apps import App
from models.tasks import Schedule
from tasks import schedules

log = logging.getLogger("berth.addons")

ACTION = "addons.scheduler_run"
PREFIX = "app-cron:"
MAX_COMMAND = 4096


def _prefix(app_id: str) -> str:
    return f"{PREFIX}{app_id}:"


def schedule_name(app_id: str, entry: str) -> str:
    return _prefix(app_id) + hashlib.sha256(entry.encode()).hexdigest()[:12]


def check(options: dict, field: str) -> None:
    """Every entry an object with a valid cron `schedule` and a non-empty `command`."""
    for entry, spec in options.items():
        where = f"{field}.{entry}"
        if not isinstance(spec, dict):
            raise BadRequest("must be an object {schedule, command}", where)
        command = spec.get("command")
        if not isinstance(command, str) or not command.strip() or len(command) > MAX_COMMAND:
            raise BadRequest(f"needs a command (a shell command, up to {MAX_COMMAND} characters)",
                             f"{where}.command")
        pattern = spec.get("schedule")
        if not isinstance(pattern, str) or pattern.strip().lower() == schedules.NEVER:
            raise BadRequest("needs a schedule (a cron pattern)", f"{where}.schedule")
        try:
            schedules.validate(pattern)
        except BadRequest as e:
            raise BadRequest(e.message.removeprefix(f"{e.field}: "), f"{where}.schedule") from None


def app_schedules(app_id: str) -> list[str]:
    """Names of the app's scheduler entries in the schedules table."""
    return [row.name for row in Schedule.select(Schedule.name).where(Schedule.name.startswith(_prefix(app_id)))]


def setup(app: App, options: dict, log: Callable[[str], Any]) -> None:
    """Make the app's schedules exactly the manifest's entries."""
    wanted = {}
    for entry, spec in options.items():
        wanted[schedule_name(app.id, entry)] = (spec["schedule"].strip(), {
            "app_id": app.id, "entry": entry, "command": spec["command"]})
    for name in app_schedules(app.id):
        if name not in wanted:
            schedules.remove(name)
    for name, (pattern, args) in wanted.items():
        schedules.save(name, pattern, ACTION, args)
        log(f"scheduler: {args['entry']} runs at '{pattern}'")


def teardown(app: App, options: dict, log: Callable[[str], Any]) -> None:
    for name in app_schedules(app.id):
        schedules.remove(name)


def run(fire_time: float | None = None, app_id: str = "", entry: str = "", command: str = "", **_: object) -> None:
    """Schedule action: start `command` in the app's container, output to the container's log."""
    app = App.get_or_none(App.id == app_id)
    if app is None or app.run_state == "stopped":
        return
    script = f"( {command}\n) </dev/null >/proc/1/fd/1 2>/proc/1/fd/2 &"
    try:
        code, output = containers.exec_run(containers.container_name(app_id), ["/bin/sh", "-c", script],
                                           timeout=30)
    except containers.ContainerError as e:
        log.info("scheduler entry %s of app %s not run: %s", entry, app_id, e.message)
        return
    if code != 0:
        log.warning("scheduler entry %s of app %s: exit code %s: %s", entry, app_id, code,
                    output.decode(errors="replace")[-500:])
