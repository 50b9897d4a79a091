"""How a restore puts the downloaded data folder in place (backups.scratch.swap_data /
discard_old): two renames, the old folder kept until the restored one is on disk and the app is
back, and the app's own data put back if the swap itself fails."""
import os

import pytest

from backups import scratch
from core import data_paths


class Task:
    id = 41

    def __init__(self):
        self.lines = []

    def log(self, text):
        self.lines.append(str(text))


def make(folder, files):
    os.makedirs(folder)
    for name, text in files.items():
        with open(os.path.join(folder, name), "w") as f:
            f.write(text)


def contents(folder):
    return {name: open(os.path.join(folder, name)).read() for name in sorted(os.listdir(folder))}


def test_swap_keeps_the_old_folder_until_it_is_discarded(db):
    task = Task()
    data = data_paths.app_data("app-1")
    make(data, {"mine.txt": "before the restore"})
    staged = scratch.staged_data("app-1", task)
    make(staged, {"restored.txt": "from the backup"})

    old = scratch.swap_data("app-1", staged, task)

    assert contents(data) == {"restored.txt": "from the backup"}
    assert not os.path.exists(staged)
    assert old == f"{data}.old-{task.id}" and contents(old) == {"mine.txt": "before the restore"}
    scratch.discard_old(old, task)
    assert not os.path.exists(old)
    assert sorted(os.listdir(os.path.dirname(data))) == ["data"]


def test_swap_into_an_app_without_a_data_folder_has_nothing_to_discard(db):
    task = Task()
    staged = scratch.staged_data("app-2", task)
    make(staged, {"restored.txt": "from the backup"})
    assert scratch.swap_data("app-2", staged, task) is None
    assert contents(data_paths.app_data("app-2")) == {"restored.txt": "from the backup"}
    scratch.discard_old(None, task)


def test_swap_that_cannot_put_the_restored_folder_in_place_puts_the_old_one_back(db):
    task = Task()
    data = data_paths.app_data("app-3")
    make(data, {"mine.txt": "before the restore"})
    with pytest.raises(FileNotFoundError):
        scratch.swap_data("app-3", scratch.staged_data("app-3", task), task)   # nothing was staged
    assert contents(data) == {"mine.txt": "before the restore"}
    assert sorted(os.listdir(os.path.dirname(data))) == ["data"]


def test_old_folder_of_a_restore_killed_after_the_swap_is_removed_by_cleanup(db):
    """A task killed between the swap and discard_old leaves data.old-<task>: the next cleanup
    removes it (the restored folder is in place), as it did before the removal was deferred.
    (Task 41 has no row: it is not running.)"""
    task = Task()
    data = data_paths.app_data("app-4")
    make(data, {"mine.txt": "before the restore"})
    staged = scratch.staged_data("app-4", task)
    make(staged, {"restored.txt": "from the backup"})
    old = scratch.swap_data("app-4", staged, task)
    scratch.remove_leftovers(Task())
    assert not os.path.exists(old)
    assert contents(data) == {"restored.txt": "from the backup"}
