"""The one way Berth runs an external program: an argument list (never a shell string), a
timeout, a debug log line, and on failure an error carrying the tail of what it printed.

Only this module imports `subprocess` (tests/test_layout.py); long-running pipelines
(tar | gzip, task processes) use `spawn`, which hands back the Popen.
"""
import logging
import subprocess
from collections.abc import Iterable, Mapping
from typing import Any

log = logging.getLogger("berth.commands")

PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL
STDOUT = subprocess.STDOUT
TimeoutExpired = subprocess.TimeoutExpired
Popen = subprocess.Popen
TAIL = 2000  # characters of output kept in an error message


class CommandError(Exception):
    """A program failed: `returncode` and the tail of its output in the message."""

    def __init__(self, argv: Iterable[object], returncode: int | None, output: str | None) -> None:
        self.argv, self.returncode, self.output = list(argv), returncode, output
        tail = (output or "").strip()[-TAIL:]
        super().__init__(f"{argv[0]} exited with {returncode}" + (f": {tail}" if tail else ""))


def run(argv: Iterable[object], *, timeout: float | None = 60, env: Mapping[str, str] | None = None,
        input: str | None = None, check: bool = True, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `argv` to the end and return its CompletedProcess (text output captured).
    A non-zero exit raises CommandError when `check`; a missing program raises OSError;
    a timeout raises CommandError with returncode None."""
    argv = [str(a) for a in argv]
    log.debug("run %s", argv[0])
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                                input=input, cwd=cwd, stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        out = e.stderr or e.stdout or ""
        raise CommandError(argv, None, (out.decode(errors="replace") if isinstance(out, bytes) else out)
                           + f" (timed out after {timeout} s)") from None
    if check and result.returncode != 0:
        raise CommandError(argv, result.returncode, result.stderr or result.stdout)
    return result


def spawn(argv: Iterable[object], **popen_kwargs: Any) -> subprocess.Popen:
    """Start `argv` and return the Popen (for pipelines and long-lived children)."""
    argv = [str(a) for a in argv]
    log.debug("spawn %s", argv[0])
    return subprocess.Popen(argv, **popen_kwargs)
