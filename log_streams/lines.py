"""Log lines in the Cloudron log format: `<ISO-8601 timestamp> <message>`, one per line.

A line's id is its realtimeTimestamp in microseconds since the epoch, made strictly increasing
per log (a line whose timestamp is not later than the previous one gets previous + 1), so ids
are deterministic for a given file and a client resuming after id N gets exactly what follows.
"""
import datetime
import json
from collections.abc import Iterable

_EPOCH = datetime.datetime(1970, 1, 1)
_US = datetime.timedelta(microseconds=1)


def now_us() -> int:
    """Now, in microseconds since the epoch (UTC)."""
    return (datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - _EPOCH) // _US


def format_timestamp(us: int) -> str:
    """Microseconds since the epoch -> `2024-05-01T12:00:00.123456Z`."""
    return (_EPOCH + datetime.timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: str) -> int | None:
    """ISO-8601 timestamp -> microseconds since the epoch, or None."""
    if len(text) < 19 or not text[:4].isdigit():
        return None
    try:
        value = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return (value - _EPOCH) // _US


def format_line(us: int, message: str) -> str:
    """The stored form of a line, newline included."""
    return f"{format_timestamp(us)} {message}\n"


class LogLine:
    """One log line. `id` is its realtimeTimestamp (microseconds), unique and increasing per log;
    `raw` is the stored line. `encoded` is left to consumers that send the same line to many
    clients (web.event_stream): they encode it once and keep the bytes here."""
    __slots__ = ("id", "message", "raw", "source", "encoded")

    def __init__(self, id: int, message: str, raw: str, source: str) -> None:
        self.id = id
        self.message = message
        self.raw = raw
        self.source = source
        self.encoded = None

    def as_dict(self) -> dict:
        return {"realtimeTimestamp": self.id, "message": self.message, "source": self.source}

    def json(self) -> str:
        return json.dumps(self.as_dict(), ensure_ascii=False, separators=(",", ":"))


def stamped_line(source: str, when: datetime.datetime | None, text: str) -> LogLine:
    """A line some other program stamped (a container's output, stamped by the engine); a line
    without a stamp gets now."""
    us = int(when.timestamp() * 1_000_000) if when is not None else now_us()
    return LogLine(us, text, f"{format_timestamp(us)} {text}", source)


def strictly_increasing(lines: list[LogLine]) -> list[LogLine]:
    """The lines with ids made strictly increasing (two lines may carry one timestamp)."""
    last = 0
    for line in lines:
        if line.id <= last:
            line.id = last + 1
        last = line.id
    return lines


def parse_lines(texts: Iterable[str], prev_id: int, source: str) -> tuple[list[LogLine], int]:
    """Stored lines -> (LogLine list, id of the last line). Lines without a timestamp are kept
    whole as the message (and get the previous id + 1); empty lines are skipped."""
    out = []
    for raw in texts:
        if raw.endswith("\r"):
            raw = raw[:-1]
        if not raw:
            continue
        head, _, rest = raw.partition(" ")
        ts = parse_timestamp(head)
        if ts is None:
            message, ts = raw, prev_id + 1
        else:
            message = rest
        prev_id = ts if ts > prev_id else prev_id + 1
        out.append(LogLine(prev_id, message, raw, source))
    return out, prev_id
