"""Local scratch space of backup tasks, and what killed tasks left of it.

- `<data>/backup-work/<task>-<name>`: platform snapshots being packed, box backups being unpacked;
- `<data>/apps/<id>/data.restore-<task>`: a backup downloaded beside an app's data folder;
- `<data>/apps/<id>/data.old-<task>`: the app's data folder moved aside while the restored one
  takes its place.
Each carries the id of its task, so cleanup can tell finished tasks' leftovers from live work.
"""
import os
import shutil

from backups import records
from core import data_paths
from tasks.context import TaskContext


def work_dir(task: TaskContext, name: str) -> str:
    """An empty (not yet created) scratch folder for `task`."""
    path = os.path.join(data_paths.backup_work(), f"{task.id}-{name}")
    shutil.rmtree(path, ignore_errors=True)
    return path


def staged_data(app_id: str, task: TaskContext) -> str:
    """Where a restore or clone downloads an app's backup before it replaces the data folder."""
    return f"{data_paths.app_data(app_id)}.restore-{task.id}"


def replace_data(app_id: str, staged: str, task: TaskContext) -> None:
    """Put the downloaded folder in place of the app's data folder (two renames; the old folder
    is removed only once the new one is in place)."""
    data = data_paths.app_data(app_id)
    old = f"{data}.old-{task.id}"
    if os.path.lexists(data):
        os.rename(data, old)
    os.rename(staged, data)
    shutil.rmtree(old, ignore_errors=True)


def _finished(task_id: str) -> bool:
    return task_id.isdigit() and not records.task_running(int(task_id))


def remove_leftovers(task: TaskContext) -> None:
    """Remove the scratch of tasks that were killed; a data folder moved aside by a restore that
    died before putting the new one in place goes back, never away."""
    root = data_paths.backup_work()
    for name in os.listdir(root) if os.path.isdir(root) else ():
        if _finished(name.split("-", 1)[0]):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
    apps_root = data_paths.apps_root()
    for app_id in os.listdir(apps_root) if os.path.isdir(apps_root) else ():
        folder = data_paths.app_dir(app_id)
        for name in sorted(os.listdir(folder)):
            if not name.startswith(("data.restore-", "data.old-")) or not _finished(name.rsplit("-", 1)[-1]):
                continue
            if name.startswith("data.old-") and not os.path.lexists(os.path.join(folder, "data")):
                # Killed between moving the data folder aside and putting the restored one in
                # place: the app's own data goes back, never away.
                task.log(f"putting back the data folder of app {app_id} from {name}")
                os.rename(os.path.join(folder, name), os.path.join(folder, "data"))
                continue
            task.log(f"removing the leftover {app_id}/{name}")
            shutil.rmtree(os.path.join(folder, name), ignore_errors=True)


def tree_size(path: str) -> tuple[int, int]:
    """(bytes, files) below `path`, symlinks counted as themselves."""
    total, files = 0, 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
                files += 1
            except OSError:
                pass
    return total, files
