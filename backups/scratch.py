"""Local scratch space of backup tasks, and what killed tasks left of it.

- `<data>/backup-work/<task>-<name>`: platform snapshots being packed, box backups being unpacked;
- `<data>/apps/<id>/data.restore-<task>`: a backup downloaded beside an app's data folder;
- `<data>/apps/<id>/data.old-<task>`: the app's data folder moved aside while the restored one
  takes its place (a rename), removed once the app is back up and the restored data synced;
- `<data>/backup-work/<task>-app-<id>`: an app backup with addons: the data folder as hard links
  (link_tree) beside the database dumps.
Each carries the id of its task, so cleanup can tell finished tasks' leftovers from live work.
"""
import errno
import os
import shutil
import stat

import apps
from backups import records
from backups.formats import dirfds
from core import data_paths
from tasks.context import TaskContext


def work_dir(task: TaskContext, name: str) -> str:
    """An empty (not yet created) scratch folder for `task`."""
    path = os.path.join(data_paths.backup_work(), f"{task.id}-{name}")
    shutil.rmtree(path, ignore_errors=True)
    return path


def staged_data(app_id: str, task: TaskContext) -> str:
    """Where a restore or clone downloads an app's backup before it replaces the data folder."""
    return f"{apps.data_dir(app_id)}.restore-{task.id}"     # beside a custom dataDir too (one rename)


def replace_data(app_id: str, staged: str, task: TaskContext) -> None:
    """Put the downloaded folder in place of the app's data folder (two renames; the old folder
    is removed only once the new one is in place)."""
    discard_old(swap_data(app_id, staged, task), task)


def swap_data(app_id: str, staged: str, task: TaskContext) -> str | None:
    """Put the downloaded folder in place of the app's data folder: two renames, O(1) whatever
    the size. Returns where the old folder went (`data.old-<task>`), or None if there was none;
    it stays until discard_old, so a restore removes it only once the app is back up."""
    data = apps.data_dir(app_id)
    old = f"{data}.old-{task.id}"
    moved = os.path.lexists(data)
    if moved:
        os.rename(data, old)
    try:
        os.rename(staged, data)
    except BaseException:
        if moved:
            os.rename(old, data)    # the app's own data goes back, never away
        raise
    return old if moved else None


def discard_old(old: str | None, task: TaskContext) -> None:
    """Remove the data folder swap_data moved aside, once what replaced it is on disk (syncfs of
    its file system: until then the old folder is what a crash would leave to fall back on).
    Removing a large tree is slow (seconds per GB of small files here), which is why a restore
    does it after the app is up; a task killed before leaves it to remove_leftovers."""
    if old is None:
        return
    try:
        dirfds.syncfs(os.path.dirname(old))
    except OSError as e:
        task.log(f"could not sync the restored data ({e.strerror or e}); keeping {old}")
        return
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


def link_tree(src: str, dest: str) -> None:
    """Make `dest` (absent) a copy of the app's data folder `src` out of hard links, so that an app
    backup can hold the data folder beside its database dumps without copying it.

    The folder is the app's: it may hold symlinks planted anywhere. os.fwalk opens every folder
    relative to its parent without following symlinks, and entries are linked relative to that
    descriptor without following them (a symlink is linked as the symlink), so nothing outside
    `src` is ever reached. Folders are made anew with the mode, owner and times of the original.
    Another file system (EXDEV) gets a copy of regular files and symlinks instead."""
    os.mkdir(dest, 0o700)
    made = []
    for dirpath, dirnames, filenames, dirfd in os.fwalk(src, follow_symlinks=False):
        rel = os.path.relpath(dirpath, src)
        target = dest if rel == "." else os.path.join(dest, rel)
        if rel != ".":
            os.mkdir(target, 0o700)
        made.append((target, os.fstat(dirfd)))
        for name in dirnames + filenames:
            st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                continue        # fwalk goes into it (a symlink to a folder is linked below)
            try:
                os.link(name, os.path.join(target, name), src_dir_fd=dirfd, follow_symlinks=False)
            except OSError as e:
                if e.errno != errno.EXDEV:
                    raise
                _copy_entry(dirfd, name, os.path.join(target, name), st)
    for target, st in reversed(made):
        os.chown(target, st.st_uid, st.st_gid)
        os.chmod(target, stat.S_IMODE(st.st_mode))
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))


def _copy_entry(dirfd, name, target, st):
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(name, dir_fd=dirfd), target)
        os.lchown(target, st.st_uid, st.st_gid)
    elif stat.S_ISREG(st.st_mode):
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dirfd)
        with os.fdopen(fd, "rb") as f, open(target, "xb") as out:
            shutil.copyfileobj(f, out)
        os.chown(target, st.st_uid, st.st_gid)
        os.chmod(target, stat.S_IMODE(st.st_mode))
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    # device nodes, fifos, sockets: nothing an app restore would bring back anyway
