"""Berth's log units: the files behind them, read without following planted symlinks, nginx's
times converted, both nginx logs merged, and a followed unit delivering new lines."""
import asyncio
import datetime
import os
import time

import pytest

from core import config, data_paths
from core.errors import NotFound
from system_monitor import box_log, platform_logs


@pytest.fixture
def data_dir(tmp_path):
    previous = config._current
    config.use(config.load({"BERTH_DATA_DIR": str(tmp_path)}))
    os.makedirs(tmp_path / "logs")
    os.makedirs(tmp_path / "nginx" / "logs")
    yield tmp_path
    config.use(previous)


def berth_line(message, at=None):
    stamp = datetime.datetime.fromtimestamp(at or time.time(), datetime.timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ") + f" INFO berth.test: {message}\n"


def test_box_unit_reads_berth_lines_with_their_times(data_dir):
    with open(data_paths.box_log(), "w") as f:
        f.write(berth_line("one", 1_700_000_000) + berth_line("two", 1_700_000_001) + "  continuation\n")
    lines = platform_logs.unit_log("box").tail(10)
    assert [line.message for line in lines] == ["INFO berth.test: one", "INFO berth.test: two", "  continuation"]
    assert [line.id for line in lines] == [1_700_000_000_000_000, 1_700_000_001_000_000, 1_700_000_001_000_001]
    assert [line.message for line in platform_logs.unit_log("box").tail(1)] == ["  continuation"]
    text = platform_logs.render(lines[:1], "plain")
    assert text.endswith(" INFO berth.test: one\n")


def test_unknown_units_are_not_found(data_dir):
    for unit in ("", "boxes", "crash-1", "../box", "nginx/error"):
        with pytest.raises(NotFound):
            platform_logs.unit_log(unit)


def test_nginx_unit_merges_error_and_access_logs_by_time(data_dir):
    logs = data_dir / "nginx" / "logs"
    t0 = datetime.datetime(2027, 1, 15, 8, 0, 0, tzinfo=datetime.timezone.utc)
    local = t0.astimezone()
    (logs / "error.log").write_text(local.strftime("%Y/%m/%d %H:%M:%S") + " [warn] 1#1: first\n"
                                    + (local + datetime.timedelta(seconds=2)).strftime("%Y/%m/%d %H:%M:%S")
                                    + " [warn] 1#1: third\n")
    (logs / "access.log").write_text('127.0.0.1 [15/Jan/2027:09:00:01 +0100] a.test "GET / HTTP/1.1" 200 5 0.001 "x"\n')
    lines = platform_logs.unit_log("nginx").tail(10)
    assert [line.id // 1_000_000 for line in lines] == [1_800_000_000, 1_800_000_001, 1_800_000_002]
    assert "first" in lines[0].message and "GET /" in lines[1].message and "third" in lines[2].message
    assert all(line.source == "nginx" for line in lines)


def test_log_unit_through_planted_symlink_reads_nothing(data_dir, tmp_path_factory):
    secret = tmp_path_factory.mktemp("elsewhere") / "shadow"
    secret.write_text(berth_line("root:secret-hash"))
    logs = data_dir / "nginx" / "logs"
    os.symlink(secret, logs / "error.log")  # nginx's log folder is written by nginx's workers
    assert platform_logs.unit_log("nginx").tail(10) == []
    # a symlinked folder on the way is refused too
    os.rmdir(data_dir / "logs")
    os.symlink(secret.parent, data_dir / "logs")
    os.symlink(secret, secret.parent / "box.log")
    assert platform_logs.unit_log("box").tail(10) == []


def test_log_unit_that_is_a_planted_fifo_does_not_hang(data_dir):
    os.mkfifo(data_paths.crash_log())
    started = time.monotonic()
    assert platform_logs.unit_log("crash").tail(10) == []
    assert time.monotonic() - started < 2


def test_followed_unit_replays_then_delivers_new_lines(data_dir):
    with open(data_paths.box_log(), "w") as f:
        f.write(berth_line("old 1") + berth_line("old 2"))

    async def run():
        source = await platform_logs.unit_log("box").follow(1, None)
        try:
            first = await source.next_batch(0)
            with open(data_paths.box_log(), "a") as f:
                f.write(berth_line("new"))
            later = []
            while not later:
                later = await source.next_batch(5)
            return first, later
        finally:
            source.close()
    first, later = asyncio.run(run())
    assert [line.message for line in first] == ["INFO berth.test: old 2"]
    assert [line.message for line in later] == ["INFO berth.test: new"]
    assert later[0].id > first[0].id


def test_log_files_get_lines_and_tracebacks_and_rotate(data_dir):
    import logging
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        box_log.install()
        box_log.install()  # once per process
        added = [h for h in root.handlers if h not in before]
        assert len(added) == 3
        logging.getLogger("berth.test").info("hello %s", "box")
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("berth.test").exception("it broke")
        for handler in added:
            handler.flush()
        box = platform_logs.unit_log("box").tail(-1)
        assert box[0].message.startswith(f"INFO berth: server process {os.getpid()} started")
        assert [line.message for line in box[1:3]] == ["INFO berth.test: hello box", "ERROR berth.test: it broke"]
        crash = platform_logs.unit_log("crash").tail(-1)
        assert crash[0].message == "ERROR berth.test: it broke"
        assert any("RuntimeError: boom" in line.message for line in crash)
        assert box_log.rotate(max_bytes=10) == [data_paths.box_log(), data_paths.crash_log()]
        logging.getLogger("berth.test").info("after rotation")
        assert [line.message for line in platform_logs.unit_log("box").tail(-1)] == ["INFO berth.test: after rotation"]
    finally:
        for handler in [h for h in root.handlers if h not in before]:
            root.removeHandler(handler)
            handler.close()
