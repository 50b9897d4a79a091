"""configure/data_dir: move an app's data to another host folder, and back (`dataDir` null).

The request checks the folder (check_folder) and queues the app task `app.data_dir` (move). The
task stops the app, copies the data folder with `cp -a` (bytes, modes, owners, times, hard links;
symlinks are copied as symlinks, never followed), re-creates the container with the new folder
bound at /app/data, and only then removes the old copy. Any failure before that point puts
everything back: the row keeps the old folder, what the copy made is removed, the container is
re-created on the old folder, and the task fails (the app shows the error; repair retries).
"""
import os
import shutil

import apps
import containers
import eventlog
from apps import task_steps
from core import commands, config, data_paths
from core.errors import BadRequest, Conflict
from models.apps import App
from tasks.context import TaskContext

FIELD = "dataDir"
# Folders an app's data may be neither in nor a parent of (the system's own, the engine's).
SYSTEM_FOLDERS = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run",
                  "/sbin", "/sys", "/usr", "/var/lib/docker")


def _overlaps(a: str, b: str) -> bool:
    """Is one of the two normalised absolute paths inside (or equal to) the other?"""
    return os.path.commonpath([a, b]) in (a, b)


def check_folder(value: object, *, data_root: str, others: tuple[str, ...] = ()) -> str:
    """`value` as a normalised absolute folder an app's data may move to, or BadRequest: not `/`, a
    system folder or Berth's data dir, nothing inside or above one of them or another app's custom
    folder (`others`), no symlink on the way, and empty or not existing yet."""
    if not isinstance(value, str) or not value.startswith("/"):
        raise BadRequest("must be an absolute path", FIELD)
    if any(ord(c) < 32 or c == "\x7f" for c in value):
        raise BadRequest("must not contain control characters", FIELD)
    folder = "/" + os.path.normpath(value).lstrip("/")
    if folder == "/":
        raise BadRequest("cannot be /", FIELD)
    refused = [*SYSTEM_FOLDERS, os.path.normpath(os.path.abspath(data_root))]
    for bad in refused:
        if _overlaps(folder, bad):
            raise BadRequest(f"{folder} cannot be inside or above {bad}", FIELD)
    for other in others:
        if _overlaps(folder, other):
            raise BadRequest(f"{folder} overlaps the data folder of another app", FIELD)
    # the folder must be the place it names: a symlink on the way could lead anywhere (/etc)
    existing = folder
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if os.path.realpath(existing) != existing:
        raise BadRequest(f"{folder} must not pass through a symlink", FIELD)
    if os.path.lexists(folder):
        if not os.path.isdir(folder):
            raise BadRequest(f"{folder} is not a folder", FIELD)
        if os.listdir(folder):
            raise BadRequest(f"{folder} is not empty", FIELD)
    return folder


def set_data_dir(actor: eventlog.Actor, app_id: str, data_dir: str | None) -> int:
    """Check the new folder (None or "": back to <data>/apps/<id>/data) and queue the move."""
    app = apps.get_app(app_id)
    if app.installation_state != "installed":
        raise Conflict(f"App is {app.installation_state}; moving its data needs it installed")
    current = apps.data_dir(app.id)
    if data_dir:
        others = tuple(a.data_dir for a in App.select(App.data_dir).where(
            (App.id != app.id) & App.data_dir.is_null(False)))
        target = check_folder(data_dir, data_root=config.get().data_dir, others=others)
    else:
        target = None
        default = data_paths.app_data(app.id)
        if os.path.isdir(default) and os.listdir(default) and current != default:
            raise BadRequest(f"the default folder {default} is not empty", FIELD)
    if (target or data_paths.app_data(app.id)) == current:
        raise BadRequest("is already the app's data folder", FIELD)
    return apps.queue_task(app, "pending_data_dir_migration", "app.data_dir", {"data_dir": target},
                           actor=actor, action="app.configure", event={"changed": ["dataDir"], "dataDir": target})


# ---- the task -----------------------------------------------------------------------------------

def copy_tree(source: str, dest: str) -> None:
    """Copy the contents of `source` into the empty or missing folder `dest`, `dest` taking
    `source`'s own mode and owner. `cp -a` keeps bytes, modes, owners, times, hard links, and
    copies symlinks as symlinks (never follows one out of `source`)."""
    os.makedirs(dest, exist_ok=True)
    commands.run(["cp", "-a", "--no-dereference", "--", os.path.join(source, "."), dest], timeout=None)


def _clear(folder: str, made: bool) -> None:
    """Remove what a copy put in `folder` (the folder itself too when the move made it)."""
    if made:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for entry in os.scandir(folder):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            os.unlink(entry.path)


def move(task: TaskContext, app_id: str, data_dir: str | None = None, **_: object) -> None:
    """The task body (`app.data_dir`): see the module docstring."""
    with task_steps.run_app_task(task, app_id, "pending_data_dir_migration") as app:
        previous = app.data_dir
        source = apps.data_dir(app.id)
        dest = data_dir or data_paths.app_data(app.id)
        made = not os.path.lexists(dest)
        task.progress(10, "Stopping the app")
        containers.stop(app.id)
        try:
            task.progress(20, f"Copying the data to {dest}")
            copy_tree(source, dest)
            task_steps.set_app(app.id, data_dir=data_dir)
            app.data_dir = data_dir
            task_steps.bring_up(task, app)
        except BaseException:
            task.log(f"moving the data failed: keeping {source}")
            task_steps.set_app(app.id, data_dir=previous)
            app.data_dir = previous
            _clear(dest, made)
            try:
                task_steps.bring_up(task, app)
            except Exception as e:  # noqa: BLE001 - the move's own failure is what the task reports
                task.log(f"could not start the app on {source} again: {e}")
            raise
        task.progress(96, f"Removing the old copy in {source}")
        shutil.rmtree(source, ignore_errors=True)
        if app.run_state == "stopped":
            containers.stop(app.id)
            task_steps.set_app(app.id, run_state="stopped")
            task_steps.write_proxy(task, app, "stopped")
        task.progress(100, f"The data is in {dest}")
