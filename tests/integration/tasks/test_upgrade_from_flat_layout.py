"""A database written by the flat layout (commit f796de7: task bodies and schedule actions stored
as "module:function" of root modules that no longer exist) is upgraded and everything in it runs.

legacy_f796de7.sql is that commit's own database after `register()` of every schedule and one
queued cleanup task, dumped as SQL (made with the code of f796de7, not written by hand).
"""
import os
import sqlite3
import time

from support.harness import BerthServer

HERE = os.path.dirname(os.path.abspath(__file__))
OLD_NAMES = ("app_health:", "app_updates:", "backups:", "backup_tasks:", "app_tasks:")


def _legacy_data_dir(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    db = sqlite3.connect(data / "berth.db")
    with open(os.path.join(HERE, "legacy_f796de7.sql")) as f:
        db.executescript(f.read())
    db.close()
    return str(data)


def _rows(data_dir, sql):
    db = sqlite3.connect(os.path.join(data_dir, "berth.db"))
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_pending_tasks_and_installed_schedules_of_the_flat_layout_run_after_upgrade(tmp_path):
    data_dir = _legacy_data_dir(tmp_path)
    before = _rows(data_dir, "SELECT action FROM schedules") + _rows(data_dir, "SELECT body FROM tasks")
    assert all(v.startswith(OLD_NAMES) for (v,) in before), before   # the fixture really is old

    server = BerthServer(data_dir=data_dir).start()
    try:
        # the queued cleanup task runs to success under its stable name
        deadline = time.time() + 60
        while time.time() < deadline:
            (body, pending, active, success, error), = _rows(
                data_dir, "SELECT body, pending, active, success, error FROM tasks WHERE id = 1")
            if not pending and not active:
                break
            time.sleep(0.3)
        assert body == "backup.cleanup"
        assert success == 1, error

        # every installed schedule now names a registered action, and the 10-second one fires
        actions = dict(_rows(data_dir, "SELECT name, action FROM schedules"))
        legacy = {"app-health": "apps.health_check", "app-autoupdate": "apps.autoupdate",
                  "box-autoupdate": "box.autoupdate", "backup": "backup.scheduled",
                  "backup-cleanup": "backup.scheduled_cleanup"}
        assert {name: actions.get(name) for name in legacy} == legacy   # (newer schedules may be added)
        from tasks import registry
        for action in actions.values():
            assert callable(registry.action(action))
        deadline = time.time() + 25
        while time.time() < deadline and not _rows(
                data_dir, "SELECT 1 FROM schedule_runs WHERE schedule = 'app-health'"):
            time.sleep(0.5)
        time.sleep(1)
        assert _rows(data_dir, "SELECT 1 FROM schedule_runs WHERE schedule = 'app-health'")
        assert "failed" not in server.log(), server.log()
    finally:
        server.cleanup()
