"""The runner starts its task fork server on demand: none while no task has come (an idle Berth
carries no second interpreter with every body module imported, issue 18), one when a task is
claimed, kept warm for the tasks after it, and a new one for the next task when it ended (died or
idle exit), the ended one reaped at once.

A real runner thread on a throw-away database runs the real body `dns.sync` (nothing to write
without apps: the task starts, runs and ends) in processes forked by a real fork server."""
import os
import signal
import time

import psutil
import pytest

import tasks
from tasks import runner as task_runner
from tasks import store


def fork_servers():
    """The fork servers this process started that are still there (not zombies)."""
    found = []
    for child in psutil.Process().children():
        try:
            if "tasks.fork_server" in child.cmdline() and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child.pid)
        except psutil.NoSuchProcess:
            pass
    return found


def run_task():
    """Queue a task and wait for it to end; the pid of the process that ran it."""
    task_id = tasks.start("syncDnsRecords", "dns.sync", {"domain": None})
    deadline = time.monotonic() + 60   # the first one waits for the server's start-up
    while time.monotonic() < deadline:
        task = store.get(task_id)
        if not task.active and not task.pending:
            assert task.error is None, task.error
            return task.pid
        time.sleep(0.02)
    raise AssertionError(f"task {task_id} did not end")


def eventually(check, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


@pytest.fixture
def runner(db):
    r = task_runner.Runner()
    r.start()
    tasks._runner = r
    yield r
    tasks._runner = None
    r.stop()


def test_an_idle_runner_starts_no_fork_server(runner):
    time.sleep(3 * task_runner.IDLE_TICK_SECS)  # several idle ticks of the runner thread
    assert fork_servers() == []


def test_the_first_task_starts_the_fork_server_and_the_next_ones_use_it(runner):
    first = run_task()
    servers = fork_servers()
    assert len(servers) == 1 and first not in servers
    run_task()
    assert fork_servers() == servers    # warm: the same server forked the second task
    runner.stop()
    assert eventually(lambda: fork_servers() == [])   # and it ends with the runner


def test_a_fork_server_that_ended_is_reaped_and_the_next_task_starts_a_new_one(runner):
    run_task()
    [server] = fork_servers()
    os.kill(server, signal.SIGKILL)     # as it ends after IDLE_EXIT_SECS, or dies
    assert eventually(lambda: not psutil.pid_exists(server)), "the ended fork server was not reaped"
    run_task()
    [again] = fork_servers()
    assert again != server
