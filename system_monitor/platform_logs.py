"""Berth's own logs as Cloudron's /cloudron/logs/{unit} and /cloudron/logstream/{unit} serve them.

Units (anything else is NotFound):
- `box`    Berth's log, <data dir>/logs/box.log, written by every server process (box_log.py)
- `crash`  unhandled errors with their tracebacks, <data dir>/logs/crash.log (box_log.py)
- `nginx`  Berth's nginx: its error log and its access log, merged by time

Every file is opened by walking from the data dir one component at a time with O_NOFOLLOW and
must be a regular file: nginx's log folder is written by nginx, and a symlink or FIFO planted in
a log folder must not make Berth (root) read another file or hang. Such a file reads as empty.

Lines keep their real time: Berth's lines start with an ISO time; nginx writes local time in its
own formats, converted here. A line without a time (a traceback's continuation) gets the
previous line's id + 1, so ids increase strictly and a client resumes with Last-Event-ID.
Following polls the files (one loop per client: these streams have few clients, all admins).
"""
import asyncio
import datetime
import errno
import logging
import os
import re
import stat
from collections.abc import AsyncIterator, Callable

import log_streams
import reverse_proxy
from core import data_paths
from core.errors import NotFound
from log_streams import LogLine, file_follower

log = logging.getLogger("berth.system")

Converter = Callable[[str], int | None]  # raw line -> microseconds since the epoch, or None

POLL_SECS = 0.25
READ_CAP = 1024 * 1024       # most bytes read from a followed file per poll


# ---- line times --------------------------------------------------------------------------------

def berth_time(raw: str) -> int | None:
    return log_streams.parse_timestamp(raw.partition(" ")[0])


_NGINX_ERROR = re.compile(r"^(\d{4})/(\d\d)/(\d\d) (\d\d):(\d\d):(\d\d) ")
_NGINX_ACCESS = re.compile(r"^\S+ \[(\d\d/[A-Za-z]{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] ")


def nginx_error_time(raw: str) -> int | None:
    """nginx's error log: `2024/05/01 12:00:00 [warn] ...` in this machine's local time."""
    m = _NGINX_ERROR.match(raw)
    if not m:
        return None
    local = datetime.datetime(*(int(g) for g in m.groups())).astimezone()
    return int(local.timestamp() * 1_000_000)


def nginx_access_time(raw: str) -> int | None:
    """Berth's access log format: `<address> [01/May/2024:12:00:00 +0000] <host> "<request>" ...`."""
    m = _NGINX_ACCESS.match(raw)
    if not m:
        return None
    return int(datetime.datetime.strptime(m.group(1), "%d/%b/%Y:%H:%M:%S %z").timestamp() * 1_000_000)


def to_lines(raws: list[str], convert: Converter, source: str, prev: int = 0) -> list[LogLine]:
    """Raw lines -> LogLines with strictly increasing ids. The message of a line in Berth's
    format is the text after its time; other formats keep the whole line (its time included)."""
    out = []
    for raw in raws:
        raw = raw.rstrip("\r")
        if not raw.strip():
            continue
        us = convert(raw)
        message = raw.partition(" ")[2] if us is not None and convert is berth_time else raw
        prev = us if us is not None and us > prev else prev + 1
        out.append(LogLine(prev, message, raw, source))
    return out


# ---- files, opened without following symlinks --------------------------------------------------

def open_log(path: str) -> int | None:
    """A read-only descriptor of the regular file at `path` (under the data dir), or None when it
    is missing or is not a regular file reached without a symlink."""
    root = data_paths.root()
    parts = os.path.relpath(path, root).split(os.sep)
    if parts[0] in (os.pardir, os.curdir):
        raise ValueError(f"{path} is not under the data dir")
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        for part in parts[:-1]:
            next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        # O_NONBLOCK: a FIFO planted here must not block the open; it is refused just below.
        file_fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd)
    except OSError as e:
        if e.errno not in (errno.ENOENT, errno.ENOTDIR):
            log.warning("not reading log %s: %s", path, e.strerror)  # ELOOP: a planted symlink
        return None
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(file_fd).st_mode):
        os.close(file_fd)
        log.warning("not reading log %s: not a regular file", path)
        return None
    return file_fd


def size_of(path: str) -> int:
    fd = open_log(path)
    if fd is None:
        return 0
    try:
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def tail_raw(path: str, lines: int, end: int | None = None) -> list[str]:
    """The last `lines` whole lines (-1: as many as file_follower.TAIL_CAP bytes hold) ending at byte `end`."""
    fd = open_log(path)
    if fd is None or lines == 0:
        if fd is not None:
            os.close(fd)
        return []
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        end = size if end is None else min(end, size)
        data = file_follower.tail_bytes(f, end, lambda chunks, newlines: 0 <= lines < newlines)
    raws = [raw for raw in data.decode("utf-8", "replace").split("\n") if raw.strip()]
    return raws if lines < 0 else raws[-lines:]


def read_from(path: str, offset: int) -> tuple[int, list[str]]:
    """The whole lines written after byte `offset` -> (new offset, lines). A file that shrank was
    rotated or truncated: it is read again from its start."""
    fd = open_log(path)
    if fd is None:
        return 0, []
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < offset:
            offset = 0
        if size == offset:
            return offset, []
        f.seek(offset)
        data = f.read(min(size - offset, READ_CAP))
    data = data[:data.rfind(b"\n") + 1]
    return offset + len(data), data.decode("utf-8", "replace").split("\n")


# ---- units -------------------------------------------------------------------------------------

class UnitLog:
    """One unit: one or more files (path, converter), merged by time."""

    def __init__(self, unit: str, files: list[tuple[str, Converter]]) -> None:
        self.unit, self.files = unit, files

    def tail(self, lines: int, ends: list[int] | None = None) -> list[LogLine]:
        merged = []
        for i, (path, convert) in enumerate(self.files):
            merged.extend(to_lines(tail_raw(path, lines, ends[i] if ends else None), convert, self.unit))
        if len(self.files) > 1:
            merged.sort(key=lambda line: line.id)
            merged = log_streams.strictly_increasing(merged)
        return merged if lines < 0 else merged[-lines:]

    async def follow(self, lines: int, after: int | None) -> log_streams.LineSource:
        offsets = [await asyncio.to_thread(size_of, path) for path, _ in self.files]
        replay = await asyncio.to_thread(self.tail, -1 if after is not None else lines, offsets)
        if after is not None:
            replay = [line for line in replay if line.id > after]
        return log_streams.IterSource(self._new_lines(offsets), self.unit, replay)

    async def _new_lines(self, offsets: list[int]) -> AsyncIterator[LogLine]:
        prev = [0] * len(self.files)
        while True:
            await asyncio.sleep(POLL_SECS)
            batch = []
            for i, (path, convert) in enumerate(self.files):
                offsets[i], raws = await asyncio.to_thread(read_from, path, offsets[i])
                new = to_lines(raws, convert, self.unit, prev[i])
                if new:
                    prev[i] = new[-1].id
                batch.extend(new)
            for line in sorted(batch, key=lambda line: line.id):
                yield line  # IterSource keeps the ids strictly increasing across files


def units() -> dict[str, UnitLog]:
    layout = reverse_proxy.Layout.of(data_paths.root())
    return {
        "box": UnitLog("box", [(data_paths.box_log(), berth_time)]),
        "crash": UnitLog("crash", [(data_paths.crash_log(), berth_time)]),
        # access.log: the name reverse_proxy.main_config gives it in nginx.conf
        "nginx": UnitLog("nginx", [(layout.error_log, nginx_error_time),
                                   (os.path.join(layout.logs, "access.log"), nginx_access_time)]),
    }


def unit_log(unit: str) -> UnitLog:
    found = units().get(unit)
    if found is None:
        raise NotFound("No such log unit (box, crash, nginx)")
    return found


def render(lines: list[LogLine], fmt: str) -> str:
    """A download: one JSON object per line (`json`) or the lines as stored (`plain`, `short`)."""
    if fmt == "json":
        return "".join(line.json() + "\n" for line in lines)
    return "".join(line.raw + "\n" for line in lines)
