"""Berth's own log files under the data dir: box.log (what Berth logs) and crash.log (unhandled
errors with their tracebacks), both in Cloudron's line format `<ISO time> <text>`.

Before this, Berth logged only to gunicorn's stderr, which /cloudron/logs/box cannot read. Every
server process appends to the same files (O_APPEND: whole lines, no interleaving within a line);
the handlers are WatchedFileHandlers, so when the collector rotates a file (`rotate`, box.log ->
box.log.1 above MAX_BYTES) every process reopens the new one at its next line. Task processes
log to their task's log instead (tasks.context replaces these handlers there).

Levels: Berth's loggers (`berth.*`) from INFO, everything else (libraries) from WARNING, as
before; warnings and errors still go to stderr too, as they did without a handler.
"""
import logging
import logging.handlers
import os
import sys

from core import config, data_paths
from log_streams import format_timestamp

MAX_BYTES = 10 * 1024 * 1024  # a log file bigger than this is rotated (one old file kept)
_MARK = "berth_box_log"


class LineFormatter(logging.Formatter):
    """`<ISO time, UTC, microseconds> <LEVEL> <logger>: <message>`, a traceback on the lines after."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"{format_timestamp(int(record.created * 1_000_000))} {record.levelname} {record.name}: " \
               f"{record.getMessage()}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        return f"{text}\n{record.exc_text}" if record.exc_text else text


def _crash(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.ERROR and bool(record.exc_info)


def install() -> None:
    """Add the box and crash log handlers to this process's root logger (once per data dir: an
    app built again for another data dir moves them there)."""
    root = logging.getLogger()
    mine = [h for h in root.handlers if getattr(h, _MARK, False)]
    if any(getattr(h, "baseFilename", None) == data_paths.box_log() for h in mine):
        return
    for handler in mine:
        root.removeHandler(handler)
        handler.close()
    os.makedirs(data_paths.logs(), mode=0o700, exist_ok=True)
    formatter = LineFormatter()
    box = logging.handlers.WatchedFileHandler(data_paths.box_log(), encoding="utf-8")
    box.setLevel(logging.INFO)
    crash = logging.handlers.WatchedFileHandler(data_paths.crash_log(), encoding="utf-8")
    crash.addFilter(_crash)
    stderr = logging.StreamHandler(sys.stderr)  # what logging's last resort did without handlers
    stderr.setLevel(logging.WARNING)
    for handler in (box, crash, stderr):
        handler.setFormatter(formatter)
        setattr(handler, _MARK, True)
        root.addHandler(handler)
    berth = logging.getLogger("berth")
    if berth.level == logging.NOTSET:
        berth.setLevel(logging.INFO)
    berth.info("server process %d started (Berth %s, data dir %s)", os.getpid(), config.get().version,
               data_paths.root())


def rotate(max_bytes: int = MAX_BYTES) -> list[str]:
    """Move box.log / crash.log bigger than `max_bytes` to <name>.1 (replacing the older one);
    returns the files rotated. Run by the collector, which one process runs at a time."""
    rotated = []
    for path in (data_paths.box_log(), data_paths.crash_log()):
        try:
            if os.lstat(path).st_size > max_bytes:
                os.replace(path, path + ".1")
                rotated.append(path)
        except FileNotFoundError:
            continue
    return rotated
