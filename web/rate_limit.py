"""The per-token rate budget (BERTH_RATE_LIMIT requests per minute per token), exact across every
worker process of one server.

Why a shared file: with BERTH_WORKERS=2 a budget kept in each process's memory let a token make
twice its budget (each worker granted it in full). Every worker maps the same small file under
`<data>/run/` and charges a token under an exclusive flock, so the workers see one bucket per
token. Why not the database: a counter there is a write per request (with SQLite, a queue for
the one write lock; with PostgreSQL a round trip and a dead row per request), where this costs
two flock calls and a few struct reads: measured ~3 µs per charge. The workers of one server
share a machine (and so this file) whatever database they use, PostgreSQL included.

The file is an open-addressing hash table of fixed-size slots: (16-byte hash of the token id,
bucket level, time of the last charge). A token bucket refills continuously at budget/60 per
second up to one minute of budget, so a slot unused for a minute holds a full bucket and can be
taken by another token without changing any answer. Times are CLOCK_MONOTONIC, the same in every
process of the machine; the header records the boot it was written in, and a file from an
earlier boot (whose times mean nothing now) is cleared when first opened.
"""
import fcntl
import hashlib
import mmap
import os
import struct
import threading
import time

SLOTS = 16384          # tokens charged within one minute that the table holds without eviction
PROBES = 64            # slots searched from a token's home slot
MAGIC = b"berthrl1"
_HEADER = struct.Struct("<8s16s")   # magic, boot id
_HEADER_SIZE = 64
_SLOT = struct.Struct("<16sdd")     # key, level, last charge (monotonic seconds)
_EMPTY = bytes(16)
REFILL_SECONDS = 60.0  # a bucket holds one minute of budget


def _boot_id() -> bytes:
    try:
        with open("/proc/sys/kernel/random/boot_id", "rb") as f:
            return hashlib.blake2b(f.read().strip(), digest_size=16).digest()
    except OSError:  # not Linux: the monotonic clock's epoch is still the boot
        return bytes(16)


class LocalBuckets:
    """The budget in this process's memory (no data dir: in-process uses and unit tests)."""

    def __init__(self):
        self._buckets = {}
        self._lock = threading.Lock()

    def charge(self, token_id: str, budget: int) -> float | None:
        """Take one request from the token's bucket: None, or the seconds until one is back."""
        now = time.monotonic()
        with self._lock:
            level, last = self._buckets.get(token_id, (float(budget), now))
            level, wait = _take(level, last, now, budget)
            self._buckets[token_id] = (level, now)
        return wait


class SharedBuckets:
    """The budget in a file every worker of the server maps (see the module docstring)."""

    def __init__(self, path: str, slots: int = SLOTS):
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        self.slots = slots
        self.size = _HEADER_SIZE + slots * _SLOT.size
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._lock = threading.Lock()  # flock is per open file, not per thread
        boot = _boot_id()
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            if os.fstat(self.fd).st_size != self.size:
                os.ftruncate(self.fd, 0)  # another layout, or new: start empty
                os.ftruncate(self.fd, self.size)
            self.map = mmap.mmap(self.fd, self.size)
            if _HEADER.unpack_from(self.map, 0) != (MAGIC, boot):
                self.map[:] = bytes(self.size)
                _HEADER.pack_into(self.map, 0, MAGIC, boot)
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def charge(self, token_id: str, budget: int) -> float | None:
        """Take one request from the token's bucket: None, or the seconds until one is back."""
        key = hashlib.blake2b(token_id.encode(), digest_size=16).digest()
        home = int.from_bytes(key[:8], "little") % self.slots
        now = time.monotonic()
        with self._lock:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            try:
                offset, level, last = self._find(key, home, now, budget)
                level, wait = _take(level, last, now, budget)
                _SLOT.pack_into(self.map, offset, key, level, now)
            finally:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
        return wait

    def _find(self, key, home, now, budget):
        """(offset, level, last) of the key's slot, or of the slot it takes now (full bucket)."""
        free = oldest = None
        oldest_last = float("inf")
        for i in range(PROBES):
            offset = _HEADER_SIZE + ((home + i) % self.slots) * _SLOT.size
            k, level, last = _SLOT.unpack_from(self.map, offset)
            if k == key:
                return offset, level, last
            if k == _EMPTY:  # slots are never emptied again: the key is not further on
                return (free if free is not None else offset), float(budget), now
            if free is None and not 0 <= now - last < REFILL_SECONDS:
                free = offset  # a full bucket: its token is charged as new if it comes back
            if last < oldest_last:
                oldest, oldest_last = offset, last
        # More live tokens than the window holds (not expected at SLOTS): the least recently
        # charged one loses its bucket.
        return (free if free is not None else oldest), float(budget), now


def _take(level, last, now, budget):
    level = min(float(budget), level + max(0.0, now - last) * budget / REFILL_SECONDS)
    if level < 1.0:
        return level, (1.0 - level) * REFILL_SECONDS / budget
    return level - 1.0, None
