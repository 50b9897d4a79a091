"""containers.exec_run streams a dump or a restore of any size through without holding it."""
import hashlib
import io
import tracemalloc

import pytest

import containers
from addons import images

SIZE = 48 * 1024 * 1024


class Pseudorandom(io.RawIOBase):
    """SIZE bytes made on demand, never all at once."""

    def __init__(self):
        self.left, self.counter, self.digest = SIZE, 0, hashlib.sha256()

    def readable(self):
        return True

    def read(self, n=-1):
        n = self.left if n < 0 else min(n, self.left)
        out = bytearray()
        while len(out) < n:
            self.counter += 1
            out += hashlib.sha512(self.counter.to_bytes(8, "big")).digest() * 64
        chunk = bytes(out[:n])
        self.left -= len(chunk)
        self.digest.update(chunk)
        return chunk


@pytest.fixture(scope="module")
def box(test_labels):
    container = containers.client().containers.run(images.ensure_image("redis"), ["sleep", "600"], detach=True,
                                                   labels=test_labels)
    yield container.name
    container.remove(force=True)


def test_exec_streams_stdin_of_any_size_without_holding_it(box):
    source = Pseudorandom()
    tracemalloc.start()
    code, out = containers.exec_run(box, ["sha256sum"], stdin=source)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert code == 0, out
    assert out.split()[0].decode() == source.digest.hexdigest()
    assert peak < 8 * 1024 * 1024, peak


def test_exec_streams_stdout_to_a_file_and_returns_stderr_and_the_exit_code(box, tmp_path):
    target = tmp_path / "out"
    tracemalloc.start()
    with open(target, "wb") as f:
        code, out = containers.exec_run(box, ["sh", "-c", f"head -c {SIZE} /dev/zero; echo oops >&2; exit 3"],
                                        stdout_to=f)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert (code, out) == (3, b"oops\n")
    assert target.stat().st_size == SIZE
    assert peak < 8 * 1024 * 1024, peak


def test_exec_in_a_missing_or_stopped_container_is_a_container_error(box):
    with pytest.raises(containers.ContainerError, match="no such container"):
        containers.exec_run("berth-no-such-container-xyz", ["true"])
