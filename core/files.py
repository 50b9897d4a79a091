"""Writing files so that readers see the old or the new content, never half of it; reading a
stream exactly (a pipe or socket may answer a read with fewer bytes than asked)."""
import contextlib
import os
import tempfile
from typing import Protocol


class _Reader(Protocol):
    def read(self, n: int, /) -> bytes: ...


def read_exact(f: _Reader, n: int) -> bytes:
    """`n` bytes from `f`, fewer only when it ends first."""
    parts, left = [], n
    while left > 0:
        chunk = f.read(left)
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def read_text(path: str) -> str | None:
    """The file's text, or None when it does not exist."""
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


def write_atomic(path: str, data: bytes | str, mode: int = 0o644) -> None:
    """Replace `path` with `data` in one rename (same folder, so the same file system); the file
    gets `mode` before it appears. The folder must exist."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
