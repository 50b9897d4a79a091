"""Task log files: `<data dir>/logs/tasks/<id>.log`, one `<ISO timestamp> <message>` line per
entry (the Cloudron log format), written by the task process and, for how a task ended, by
its runner. Read whole or in part for GET /tasks/{id}/logs, followed for the logstream."""
import os
import threading

import log_streams
from core import data_paths
from tasks import store


def directory() -> str:
    return data_paths.task_logs()


def path(task_id: int) -> str:
    return os.path.join(directory(), f"{int(task_id)}.log")


def open_fd(task_id: int) -> int:
    """An O_APPEND descriptor of the task's log: appends from several processes never interleave
    within a line."""
    os.makedirs(directory(), exist_ok=True)
    return os.open(path(task_id), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)


class Writer:
    """Timestamped lines to a task log. Timestamps strictly increase within one writer, so every
    line's realtimeTimestamp (and stream event id) is distinct."""

    def __init__(self, task_id: int) -> None:
        self.fd = open_fd(task_id)
        self._lock = threading.Lock()
        self._last = 0

    def write(self, text: object) -> None:
        with self._lock:
            out = []
            for message in str(text).splitlines() or [""]:
                now = max(log_streams.now_us(), self._last + 1)
                self._last = now
                out.append(log_streams.format_line(now, message))
            os.write(self.fd, "".join(out).encode("utf-8", "replace"))

    def close(self) -> None:
        os.close(self.fd)


def append(task_id: int, text: str) -> None:
    """One-off lines from outside the task process (the runner, crash recovery)."""
    writer = Writer(task_id)
    try:
        writer.write(text)
    finally:
        writer.close()


def source_name(task_id: int) -> str:
    return str(task_id)  # Cloudron's task log lines carry the task id as `source`


def read(task_id: int, lines: int = 10, fmt: str = "json") -> str:
    """The log as text: the last `lines` lines (-1: all), JSON objects or the stored lines."""
    store.get(task_id)
    entries = log_streams.read_tail(path(task_id), source_name(task_id), lines)
    if fmt == "json":
        return "".join(line.json() + "\n" for line in entries)
    return "".join(line.raw + "\n" for line in entries)


async def follow(task_id: int, lines: int | None = 10, after: int | None = None) -> log_streams.LineSource:
    """A logstream source for the task's log: history, then live lines until the task ends."""
    await log_streams.run_blocking(store.get, task_id)  # 404 for unknown ids

    async def finished():
        return await log_streams.run_blocking(store.is_finished, task_id)
    return await log_streams.follow_file(path(task_id), source_name(task_id), finished, lines, after)
