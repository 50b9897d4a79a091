"""Logs of host services, read where those programs really write them, as Cloudron log lines.

Why not log_streams.follow_file: that follower reads Berth's own format (`<ISO time> <message>`).
nginx (`2024/05/01 12:00:00 [notice] ...`, local time) and dockerd (`time="<RFC 3339>" level=...`)
write their own formats, and a line keeps its real time only if it is converted; a line that
does not start with a time (a continuation) gets the previous line's id + 1.

Sources:
- `FileLog`: a log file and a converter (nginx's error log, the file dockerd's stderr goes to).
  Following polls the file; a /services stream has few clients, so one poll loop per client
  is fine (task and app logs, which can have many, share one follower in log_streams).
- `JournalLog`: a systemd unit's journal through `journalctl -o json` (dockerd on a systemd
  machine); following asks for the entries after the last cursor once a second.
- `NoLog`: a service whose log cannot be read here: empty, and a stream that just stays open.
"""
import asyncio
import datetime
import json
import os
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Protocol

import log_streams
from core import commands
from log_streams import LogLine

# raw line -> (microseconds since the epoch or None, message)
Converter = Callable[[str], tuple[int | None, str]]

POLL_SECS = 0.25            # how often a followed file is checked for new lines
JOURNAL_POLL_SECS = 1.0     # how often journalctl is asked for new entries
READ_CAP = 1024 * 1024      # most bytes read from a followed file per poll
ALL_LINES = 100000          # what `lines=-1` means for a journal


class ServiceLog(Protocol):
    def tail(self, lines: int) -> list[LogLine]: ...

    async def follow(self, lines: int, after: int | None) -> log_streams.LineSource: ...


def _lines(raws: list[str], convert: Converter, source: str, prev: int = 0) -> list[LogLine]:
    out = []
    for raw in raws:
        raw = raw.rstrip("\r")
        if not raw.strip():
            continue
        us, message = convert(raw)
        prev = us if us is not None and us > prev else prev + 1
        out.append(LogLine(prev, message, raw, source))
    return out


# ---- converters ------------------------------------------------------------------------------

_NGINX_TIME = re.compile(r"^(\d{4})/(\d\d)/(\d\d) (\d\d):(\d\d):(\d\d) (.*)$")
_LOGRUS_TIME = re.compile(r'^time="([^"]+)"\s*(.*)$')


def berth_line(raw: str) -> tuple[int | None, str]:
    """Cloudron's own format, `<ISO time> <message>` (what the journal's entries are turned into)."""
    head, _, rest = raw.partition(" ")
    us = log_streams.parse_timestamp(head)
    return (us, rest) if us is not None else (None, raw)


def nginx_line(raw: str) -> tuple[int | None, str]:
    """nginx writes local time without a zone: read it as this machine's local time."""
    m = _NGINX_TIME.match(raw)
    if not m:
        return None, raw
    local = datetime.datetime(*(int(g) for g in m.groups()[:6])).astimezone()
    return log_streams.parse_timestamp(local.isoformat()), m.group(7)


def logrus_line(raw: str) -> tuple[int | None, str]:
    """dockerd's text format: `time="2024-05-01T12:00:00.123456789Z" level=info msg="..."`."""
    m = _LOGRUS_TIME.match(raw)
    if not m:
        return None, raw
    return log_streams.parse_timestamp(m.group(1)), m.group(2)


_SYSLOG_TIME = re.compile(r"^([A-Z][a-z]{2}) +(\d{1,2}) (\d\d):(\d\d):(\d\d) (.*)$")
_SPACED_TIME = re.compile(r"^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?) (.*)$")


def any_line(raw: str) -> tuple[int | None, str]:
    """The formats the mail programs write: ISO-8601, `YYYY-MM-DD HH:MM:SS` (rspamd) or syslog's
    `Mon DD HH:MM:SS` (Postfix, Dovecot; no year: this year, local time)."""
    us, message = berth_line(raw)
    if us is not None:
        return us, message
    m = _SPACED_TIME.match(raw)
    if m:
        local = datetime.datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}").astimezone()
        return log_streams.parse_timestamp(local.isoformat()), m.group(3)
    m = _SYSLOG_TIME.match(raw)
    if m:
        try:
            local = datetime.datetime.strptime(f"{datetime.date.today().year} {m.group(1)} {m.group(2)} "
                                               f"{m.group(3)}:{m.group(4)}:{m.group(5)}", "%Y %b %d %H:%M:%S")
        except ValueError:
            return None, raw
        return log_streams.parse_timestamp(local.astimezone().isoformat()), m.group(6)
    return None, raw


# ---- files -----------------------------------------------------------------------------------

class FileLog:
    """A log file another program writes, converted line by line."""

    def __init__(self, path: str, source: str, convert: Converter) -> None:
        self.path, self.source, self.convert = path, source, convert

    def tail(self, lines: int) -> list[LogLine]:
        # read_tail only splits and bounds the read here: the converter gives the lines their time.
        raws = [line.raw for line in log_streams.read_tail(self.path, self.source, None if lines < 0 else lines)]
        return _lines(raws, self.convert, self.source)

    async def follow(self, lines: int, after: int | None) -> log_streams.LineSource:
        offset = await asyncio.to_thread(_size, self.path)
        replay = await asyncio.to_thread(self.tail, -1 if after is not None else lines)
        if after is not None:
            replay = [line for line in replay if line.id > after]
        return log_streams.IterSource(self._new_lines(offset, replay[-1].id if replay else 0),
                                      self.source, replay)

    async def _new_lines(self, offset: int, prev: int) -> AsyncIterator[LogLine]:
        while True:
            await asyncio.sleep(POLL_SECS)
            offset, raws = await asyncio.to_thread(_read_from, self.path, offset)
            for line in _lines(raws, self.convert, self.source, prev):
                prev = line.id
                yield line


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def _read_from(path: str, offset: int) -> tuple[int, list[str]]:
    """The whole lines written after byte `offset` -> (new offset, lines). A file that shrank was
    rotated or truncated: it is read again from its start."""
    size = _size(path)
    if size < offset:
        offset = 0
    if size == offset:
        return offset, []
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(min(size - offset, READ_CAP))
    data = data[:data.rfind(b"\n") + 1]
    return offset + len(data), data.decode("utf-8", "replace").split("\n")


class MergedLog:
    """Several log files of one service (the mail server's programs), merged by time."""

    def __init__(self, logs: list[FileLog], source: str) -> None:
        self.logs, self.source = logs, source

    def tail(self, lines: int) -> list[LogLine]:
        merged = sorted((line for log in self.logs for line in log.tail(lines)), key=lambda line: line.id)
        return merged if lines < 0 else merged[-lines:] if lines else []

    async def follow(self, lines: int, after: int | None) -> log_streams.LineSource:
        offsets = [await asyncio.to_thread(_size, log.path) for log in self.logs]
        replay = await asyncio.to_thread(self.tail, -1 if after is not None else lines)
        if after is not None:
            replay = [line for line in replay if line.id > after]
        return log_streams.IterSource(self._merged(offsets), self.source, replay)

    async def _merged(self, offsets: list[int]) -> AsyncIterator[LogLine]:
        queue: asyncio.Queue[LogLine] = asyncio.Queue()

        async def pump(log: FileLog, offset: int) -> None:
            async for line in log._new_lines(offset, 0):
                await queue.put(line)
        pumps = [asyncio.create_task(pump(log, offset)) for log, offset in zip(self.logs, offsets, strict=True)]
        try:
            while True:
                yield await queue.get()
        finally:
            for task in pumps:
                task.cancel()


# ---- the systemd journal ---------------------------------------------------------------------

class JournalLog:
    """A systemd unit's journal (`journalctl -u <unit> -o json`)."""

    def __init__(self, unit: str, source: str) -> None:
        self.unit, self.source = unit, source

    def _entries(self, *args: str) -> tuple[list[LogLine], str | None]:
        result = commands.run(["journalctl", f"--unit={self.unit}", "--no-pager", "--output=json", *args],
                              timeout=30, check=False)
        raws, cursor = [], None
        for text in result.stdout.splitlines():
            try:
                entry = json.loads(text)
                us = int(entry["__REALTIME_TIMESTAMP"])
            except (ValueError, KeyError, TypeError):
                continue
            message = entry.get("MESSAGE", "")
            if isinstance(message, list):  # journald gives non-UTF-8 messages as byte arrays
                message = bytes(message).decode("utf-8", "replace")
            cursor = entry.get("__CURSOR", cursor)
            raws.extend(f"{log_streams.format_timestamp(us)} {part}" for part in str(message).split("\n"))
        return _lines(raws, berth_line, self.source), cursor

    def tail(self, lines: int) -> list[LogLine]:
        return self._entries(f"--lines={ALL_LINES if lines < 0 else lines}")[0]

    async def follow(self, lines: int, after: int | None) -> log_streams.LineSource:
        count = ALL_LINES if after is not None or lines < 0 else lines
        replay, cursor = await asyncio.to_thread(self._entries, f"--lines={count}")
        if after is not None:
            replay = [line for line in replay if line.id > after]
        since = f"--since=@{int(time.time())}"  # until the journal has an entry to continue after
        return log_streams.IterSource(self._new_entries(cursor, since), self.source, replay)

    async def _new_entries(self, cursor: str | None, since: str) -> AsyncIterator[LogLine]:
        while True:
            await asyncio.sleep(JOURNAL_POLL_SECS)
            args = [f"--after-cursor={cursor}"] if cursor else [since]
            entries, last = await asyncio.to_thread(self._entries, *args)
            cursor = last or cursor
            for line in entries:
                yield line


# ---- nothing readable ------------------------------------------------------------------------

class NoLog:
    """A service whose log Berth cannot read on this machine."""

    def __init__(self, source: str) -> None:
        self.source = source

    def tail(self, lines: int) -> list[LogLine]:
        return []

    async def follow(self, lines: int, after: int | None) -> log_streams.LineSource:
        async def nothing() -> AsyncIterator[LogLine]:
            await asyncio.Event().wait()  # stays open (heartbeats) until the client leaves
            yield  # pragma: no cover - never reached; makes this an async generator
        return log_streams.IterSource(nothing(), self.source)


def render(lines: list[LogLine], fmt: str) -> str:
    """A download: one JSON object per line (`json`) or the lines as stored (`plain`, `short`)."""
    if fmt == "json":
        return "".join(line.json() + "\n" for line in lines)
    return "".join(line.raw + "\n" for line in lines)
