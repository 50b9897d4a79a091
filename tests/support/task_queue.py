"""Queueing real task bodies (tests/support/task_bodies.py) on a running server's database, as
another Berth process would: no API route starts an arbitrary task."""
import os
import time

BODIES = "test"  # tasks.registry names test.<function> of tests/support/task_bodies.py


def database_url(server):
    return server.env.get("BERTH_DATABASE_URL") or "sqlite:///" + os.path.join(server.data_dir, "berth.db")


class Db:
    """The pytest process acting as "another Berth process" on a server's database."""

    def __init__(self, server):
        self.url = database_url(server)

    def __enter__(self):
        from models import open_database
        open_database(self.url)
        return self

    def __exit__(self, *exc):
        from models import database
        database.close()


def start_task(server, body, type="update", args=None, **kw):
    import tasks
    with Db(server):
        return tasks.start(type, f"{BODIES}.{body}", args or {}, **kw)


def finished(task):
    return not task["active"] and not task["pending"]


def wait_task(api, task_id, until=finished, timeout=30):
    deadline = time.time() + timeout
    while True:
        r = api.get(f"/tasks/{task_id}")
        assert r.status_code == 200, r.text
        task = r.json()
        if until(task):
            return task
        assert time.time() < deadline, f"task {task_id} did not get there: {task}"
        time.sleep(0.05)
