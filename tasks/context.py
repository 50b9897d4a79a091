"""What a task body sees: `task.progress(percent, message)`, `task.log(text)`, `task.args`.

Bodies are plain functions `body(task, **args)` named by "module:function"; they run in the
task process (tasks.child). Whatever they (or programs they start) print to stdout/stderr, and
what they log with `logging`, lands in the task log with a timestamp per line.
"""
import logging
import os
import sys
import threading

from models.tasks import Task
from tasks import logs, store


class TaskStopped(BaseException):
    """Raised in the body when the runner asks the task to stop (SIGTERM). Bodies may catch it
    (to record the stop on their own objects) but must re-raise it."""


class TaskContext:
    def __init__(self, task: Task) -> None:
        self.id = task.id
        self.type = task.type
        self.args = dict(task.args or {})
        self._log = logs.Writer(task.id)
        self._reader = None
        self.reported = False  # has the body reported a progress message?

    def progress(self, percent: float | None = None, message: object = None) -> None:
        """Report progress (percent 0..100 and/or a message for display); also logged."""
        store.progress(self.id, percent, message)
        self.reported = self.reported or message is not None
        parts = ([f"{int(percent)}%"] if percent is not None else []) + (
            [str(message)] if message is not None else [])
        self.log("progress: " + " ".join(parts))

    def log(self, text: object) -> None:
        self._log.write(text)

    # -- process plumbing, used by tasks.child ----------------------------------------------

    def capture_output(self) -> None:
        """Send fds 1 and 2 (this process and its children) through a pipe into the log."""
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
            stream.reconfigure(line_buffering=True)  # each printed line reaches the log at once
        read_end, write_end = os.pipe()
        os.dup2(write_end, 1)
        os.dup2(write_end, 2)
        os.close(write_end)
        handler = logging.StreamHandler(_LogStream(self))
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)

        def pump():
            with os.fdopen(read_end, "rb") as pipe:
                for raw in pipe:
                    self.log(raw.decode("utf-8", "replace").rstrip("\n"))
        self._reader = threading.Thread(target=pump, name="task-output", daemon=True)
        self._reader.start()

    def close(self) -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        if self._reader is not None:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)  # our ends of the pipe close: the reader sees EOF once
            os.dup2(devnull, 2)  # programs the body started are done with it too
            os.close(devnull)
            self._reader.join(2)
        self._log.close()


class _LogStream:
    """File-like target for logging.StreamHandler that writes task log lines."""

    def __init__(self, ctx):
        self.ctx = ctx

    def write(self, text):
        text = text.rstrip("\n")
        if text:
            self.ctx.log(text)

    def flush(self):
        pass
