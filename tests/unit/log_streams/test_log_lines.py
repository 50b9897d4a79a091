"""The Cloudron log line format: timestamps, ids that only grow, lines without a timestamp."""
import json

from log_streams import lines
from log_streams.lines import LogLine, format_line, format_timestamp, parse_lines, parse_timestamp

T0 = 1714564800_000000  # 2024-05-01T12:00:00Z in microseconds


def test_timestamp_round_trip_keeps_microseconds():
    assert format_timestamp(T0 + 123456) == "2024-05-01T12:00:00.123456Z"
    assert parse_timestamp("2024-05-01T12:00:00.123456Z") == T0 + 123456


def test_timestamp_with_offset_is_converted_to_utc():
    assert parse_timestamp("2024-05-01T14:00:00+02:00") == T0


def test_not_a_timestamp():
    for text in ("", "hello", "2024-05-01", "12345678901234567890", "2024-13-01T00:00:00Z"):
        assert parse_timestamp(text) is None, text


def test_now_us_is_now():
    import time
    assert abs(lines.now_us() - time.time() * 1_000_000) < 5_000_000


def test_format_line_is_what_parse_lines_reads_back():
    stored = format_line(T0, "hello world")
    assert stored == "2024-05-01T12:00:00.000000Z hello world\n"
    [line], last = parse_lines(stored.split("\n"), 0, "task-1")
    assert (line.id, line.message, line.raw, line.source, last) == (T0, "hello world", stored[:-1], "task-1", T0)


def test_ids_strictly_increase_when_timestamps_repeat_or_go_back():
    texts = [f"{format_timestamp(T0)} a", f"{format_timestamp(T0)} b", f"{format_timestamp(T0 - 10)} c",
             f"{format_timestamp(T0 + 5)} d"]
    parsed, last = parse_lines(texts, 0, "s")
    assert [line.id for line in parsed] == [T0, T0 + 1, T0 + 2, T0 + 5]
    assert [line.message for line in parsed] == ["a", "b", "c", "d"]
    assert last == T0 + 5


def test_parsing_continues_from_the_previous_id():
    parsed, _ = parse_lines([f"{format_timestamp(T0)} late"], T0 + 100, "s")
    assert parsed[0].id == T0 + 101


def test_line_without_timestamp_is_kept_whole_and_empty_lines_are_skipped():
    parsed, last = parse_lines([f"{format_timestamp(T0)} first", "", "Traceback (most recent call last):\r",
                                "  no stamp here"], 0, "s")
    assert [(line.id, line.message) for line in parsed] == [
        (T0, "first"), (T0 + 1, "Traceback (most recent call last):"), (T0 + 2, "  no stamp here")]
    assert parsed[1].raw == "Traceback (most recent call last):"  # the CR of a CRLF file is dropped
    assert last == T0 + 2


def test_json_form_is_compact_and_keeps_unicode():
    line = LogLine(T0, "größe ✓", "raw", "app-1")
    assert line.json() == '{"realtimeTimestamp":%d,"message":"größe ✓","source":"app-1"}' % T0
    assert json.loads(line.json()) == line.as_dict()
