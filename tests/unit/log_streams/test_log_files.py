"""Reading the tail of a log file, and the line sources over it."""
import asyncio

from log_streams import file_follower
from log_streams.file_follower import follow_file, read_tail
from log_streams.lines import format_line
from log_streams.sources import IterSource, StaticSource

T0 = 1714564800_000000


def write_log(path, count, start=0):
    with open(path, "a") as f:
        for i in range(start, start + count):
            f.write(format_line(T0 + i * 1000, f"line {i}"))


def test_last_lines_all_lines_and_none(tmp_path):
    path = tmp_path / "1.log"
    write_log(path, 20)
    assert [line.message for line in read_tail(str(path), "1", 3)] == ["line 17", "line 18", "line 19"]
    assert len(read_tail(str(path), "1", -1)) == 20
    assert len(read_tail(str(path), "1", None)) == 20
    assert read_tail(str(path), "1", 0) == []
    assert read_tail(str(tmp_path / "missing.log"), "1", 10) == []


def test_lines_after_an_id(tmp_path):
    path = tmp_path / "1.log"
    write_log(path, 20)
    after = read_tail(str(path), "1", after=T0 + 16 * 1000)
    assert [line.message for line in after] == ["line 17", "line 18", "line 19"]


def test_a_last_line_still_being_written_is_left_out_unless_partial(tmp_path):
    path = tmp_path / "1.log"
    write_log(path, 2)
    with open(path, "a") as f:
        f.write(format_line(T0 + 5000, "half")[:-1])  # no newline yet
    assert [line.message for line in read_tail(str(path), "1", -1, partial=False)] == ["line 0", "line 1"]
    assert read_tail(str(path), "1", -1)[-1].message == "half"


def test_tail_of_a_large_file_reads_only_its_end(tmp_path, monkeypatch):
    monkeypatch.setattr(file_follower, "TAIL_CAP", 64 * 1024)
    path = tmp_path / "big.log"
    write_log(path, 20000)  # ~1 MB, far more than the cap
    tail = read_tail(str(path), "1", -1)
    assert 0 < len(tail) < 20000 and tail[-1].message == "line 19999"
    assert tail[0].message.startswith("line ")  # the cut fragment at the window's start is dropped


def test_static_source_gives_its_lines_then_the_end():
    async def run():
        source = StaticSource(["a", "b"])
        return await source.next_batch(0), await source.next_batch(0)
    assert asyncio.run(run()) == (["a", "b"], None)


def test_iter_source_parses_text_and_makes_ids_unique():
    async def lines():
        yield format_line(T0, "x") + format_line(T0, "y")
        yield format_line(T0, "z")

    async def run():
        source = IterSource(lines(), source="app")
        got = []
        while (batch := await source.next_batch(1)) is not None:
            got += batch
        return got
    got = asyncio.run(run())
    assert [(line.id, line.message, line.source) for line in got] == [(T0, "x", "app"), (T0 + 1, "y", "app"),
                                                                       (T0 + 2, "z", "app")]


def test_following_a_file_replays_history_then_delivers_new_lines_until_it_ends(tmp_path):
    path = str(tmp_path / "7.log")
    write_log(path, 5)
    done = False

    async def finished():
        return done

    async def run():
        nonlocal done
        source = await follow_file(path, "7", finished, lines=2)
        first = await source.next_batch(0)
        write_log(path, 2, start=5)
        new = await source.next_batch(2)
        done = True
        while (batch := await source.next_batch(2)) is not None:
            new += batch
        source.close()
        return first, new
    first, new = asyncio.run(run())
    assert [line.message for line in first] == ["line 3", "line 4"]
    assert [line.message for line in new] == ["line 5", "line 6"]
