"""The task fork server ends on its own once idle (tasks.fork_server.IDLE_EXIT_SECS), so an idle
Berth does not keep a second interpreter with every task body imported; one in use stays."""
import os
import time

from tasks.fork_server import ForkServer


def _env(tmp_path):
    return dict(os.environ, BERTH_DATA_DIR=str(tmp_path / "data"),
                BERTH_DATABASE_URL=f"sqlite:///{tmp_path / 'berth.db'}")


def _ended_within(server, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        server.poll()
        if server.closed:
            return True
        time.sleep(0.05)
    return False


def test_an_idle_fork_server_ends_and_the_runner_sees_it(tmp_path):
    server = ForkServer(_env(tmp_path), idle_exit=0.5)
    try:
        assert _ended_within(server, 30), "the idle fork server did not end"
        assert server.proc.wait(timeout=5) == 0
    finally:
        server.kill()


def test_a_fork_server_within_its_idle_time_stays(tmp_path):
    server = ForkServer(_env(tmp_path), idle_exit=600)
    try:
        assert not _ended_within(server, 3)
        assert server.proc.poll() is None
    finally:
        server.kill()
    assert server.proc.poll() is not None
