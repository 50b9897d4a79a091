"""The object store of rsync backups (index version 4): one content-addressed store per backup
storage, `objects/<2 hex>/<62 hex>`, shared by every version 4 backup in it.

Why: with a folder of objects per backup, an incremental backup had to hard-link (or server-side
copy) every unchanged file into its own folder, ~40 us each on a disk and one request each on S3;
16k unchanged files were most of the backup. Now a backup writes only the objects the store does
not have, its index and its reference list; an unchanged file costs a stat and an index line.

- An object is the content of a small file, or one content-defined chunk of a large one
  (chunking.py), named by its BLAKE3 hash (keyed from the backup password when encrypted, so the
  storage learns nothing from a name), encrypted when keyed. An object is never replaced once it
  is there (`Storage.create`): another backup may have recorded its stored size and sha256.
- Each version 4 backup stores `<remote>/refs.bin`, every object its index references, once
  each: name, stored size and stored sha256 as a 72-byte record. The checksum list vouches for it (and for the index);
  verify checks the index references nothing the list does not hold, so the sweep below can trust
  it without the key.
- Each version 4 backup registers itself at `objects/roots/<sha256 of remote>.json` ({remote,
  beat}) BEFORE it writes its first object, and refreshes `beat` every HEARTBEAT seconds while it
  runs; the root goes when the backup is removed (formats.remove) or fails.
- Removing a backup removes its own folder and root, never an object. `sweep` (run by cleanup
  after removals, under the task engine's `backup` lock that backups hold too) deletes the objects
  no complete backup references: it marks from the reference lists of every root whose checksum
  list exists, plus backups the caller names, and it does nothing at all while a root without a
  checksum list has a beat younger than GRACE (a backup running, maybe on another server sharing
  the storage). A root whose backup never completed and stopped beating (a killed backup) is
  removed with the orphans it wrote. Any doubt (a root or list that cannot be read) stops the
  sweep before it deletes anything.

A consequence: a version 4 backup is its folder plus the objects it references, so copying a
backup elsewhere means copying `objects/` too (restores from the same storage are unaffected).
"""
import hashlib
import io
import json
import re
import threading
import time
from collections.abc import Iterable

from backup_storage import Storage, StorageError
from backup_storage.base import clean_path
from backups.formats import chunking
from backups.formats.checksums import CHECKSUMS, check_stored, read_checksums
from backups.formats.encryption import Decrypter, Encrypter, Keyring
from backups.formats.rsync_index import index_entries
from backups.formats.streams import Log, blocks, local_copy

STORE = "objects"
ROOTS = f"{STORE}/roots"
REFS = "refs.bin"
HEARTBEAT = 300.0        # seconds between two beats of a running backup's root
GRACE = 3600.0           # a root without a beat for this long belongs to a backup that died
_OBJECT = re.compile(r"objects/([0-9a-f]{2})/([0-9a-f]{62})")
_ROOT = re.compile(r"objects/roots/[0-9a-f]{64}\.json")


def object_path(name: str) -> str:
    """Where object `name` is in the storage (the name is checked: 64 hex digits, never a path)."""
    chunking.chunk_path(name)   # BackupRefused for anything but a chunk name
    return f"{STORE}/{name[:2]}/{name[2:]}"


def root_path(remote: str) -> str:
    return f"{ROOTS}/{hashlib.sha256(remote.strip('/').encode()).hexdigest()}.json"


def load(storage: Storage, name: str, keyring: Keyring | None, key: bytes | None, what: str,
         plain_size: int | None = None, stored_size: int | None = None,
         stored_sha: str | None = None, path: str | None = None) -> tuple[bytes, int, str]:
    """(plaintext, stored size, stored sha256) of object `name`, read whole (objects are at most
    chunking.MAX_STORED bytes) and checked: stored size and sha256 when given, plaintext size
    when given and plaintext against its name (BLAKE3, keyed with `key`), so an object swapped
    for another is refused too. `path`: where it is when not in the store (a chunk in a version 3
    backup's own folder)."""
    path = path or object_path(name)
    limit = stored_size if stored_size is not None else chunking.MAX_STORED
    stored, size, parts = hashlib.sha256(), 0, []
    dec = Decrypter(keyring, what) if keyring else None
    with storage.reader(path) as r:
        for raw in blocks(r):
            stored.update(raw)
            size += len(raw)
            if size > limit:
                break
            parts.extend(dec.feed(raw) if dec else (raw,))
    sha = stored.hexdigest()
    if size > limit or (stored_size is not None and size != stored_size) or (stored_sha and sha != stored_sha):
        raise StorageError(f"{path}: checksum mismatch (the stored object was modified or corrupted)")
    if dec:
        parts.append(dec.finish())
    data = b"".join(parts)
    if (plain_size is not None and len(data) != plain_size) or chunking.name_of(data, key) != name:
        raise StorageError(f"{path}: the object does not hold what its name says (it was swapped?)")
    return data, size, sha


class Objects:
    """The objects a backup being written stores or reuses, each handled once whatever the number
    of files or threads that hold it (a name being stored by one thread is waited for by another,
    never stored twice: two encryptions would differ)."""

    def __init__(self, storage: Storage, keyring: Keyring | None, stats: dict, lock: threading.Lock) -> None:
        self.storage, self.keyring = storage, keyring
        self.key = chunking.chunk_key(keyring)
        self.stats, self.stats_lock = stats, lock
        self.lock = threading.Lock()
        self.done = {}       # name -> [name, size, stored size, stored sha256]
        self.busy = {}       # name -> Event set when its writer is finished
        self.written = set()   # names this backup stored (verify reads them back)

    def _claim(self, name):
        while True:
            with self.lock:
                ref = self.done.get(name)
                if ref is not None:
                    return ref, None
                event = self.busy.get(name)
                if event is None:
                    event = self.busy[name] = threading.Event()
                    return None, event
            event.wait()

    def _finish(self, name, event, ref):
        with self.lock:
            if ref is not None:
                self.done[name] = ref
            del self.busy[name]
        event.set()

    def put(self, data: bytes | memoryview, name: str) -> list:
        """Object `name` (name_of(data, self.key)) in the store: written unless it is there."""
        have, event = self._claim(name)
        if have is not None:
            return have
        ref = None
        try:
            ref = self._store(data, name)
        finally:
            self._finish(name, event, ref)
        return ref

    def _store(self, data, name):
        if self.keyring is None:
            payload = bytes(data)
        else:
            out = io.BytesIO()
            sink = Encrypter(out, self.keyring)
            sink.write(data)
            sink.close()
            payload = out.getvalue()
        sha = hashlib.sha256(payload).hexdigest()
        path = object_path(name)
        if not self.storage.create(path, payload):
            # There already (an earlier backup's, or the orphan of one that failed): used as it is
            # if it holds what its name says, so references recorded elsewhere stay true.
            try:
                _, size, old_sha = load(self.storage, name, self.keyring, self.key, f"object {name}",
                                        plain_size=len(data))
                return [name, len(data), size, old_sha]
            except StorageError:
                self.storage.put_bytes(path, payload)   # damaged: whoever references it is broken anyway
        with self.stats_lock:
            self.stats["uploaded"] += len(payload)
            self.stats["uploadedObjects"] += 1
            self.written.add(name)
        return [name, len(data), len(payload), sha]

    def link(self, src: str, ref: list) -> list:
        """Chunk `ref` of a version 3 backup (at `src`), now in the store: hard-linked or
        server-side copied when the store lacks it, its bytes not read."""
        name = ref[0]
        have, event = self._claim(name)
        if have is not None:
            return have
        out = None
        try:
            path = object_path(name)
            if self.storage.exists(path):
                _, size, sha = load(self.storage, name, self.keyring, self.key, f"object {name}",
                                    plain_size=ref[1])
                out = [name, ref[1], size, sha]
            else:
                self.storage.copy(src, path)
                out = list(ref)
                with self.stats_lock:
                    self.stats["copied"] += ref[2]
        finally:
            self._finish(name, event, out)
        return out


_RECORD = 72   # a reference list record: name (32 bytes), stored size (8, big-endian), stored sha256 (32)


class Refs:
    """`<remote>/refs.bin` being written: each object the index references, once, as a binary
    record (half the bytes of hex text, and no compression to pay for)."""

    def __init__(self, out) -> None:
        self.out = out
        self.names = {}      # name -> stored size (one entry per object)
        self.buf = []

    def add(self, refs: Iterable[list]) -> None:
        names = self.names
        try:
            for ref in refs:
                if ref[0] not in names:
                    record = bytes.fromhex(ref[0]) + ref[2].to_bytes(8, "big") + bytes.fromhex(ref[3])
                    if len(record) != _RECORD:
                        raise ValueError(ref[0])
                    names[ref[0]] = ref[2]
                    self.buf.append(record)
        except (ValueError, TypeError, AttributeError, IndexError, KeyError, OverflowError) as e:
            # Only a forged previous index gets here (this backup's own references are made here).
            raise StorageError(f"the previous backup's index holds a malformed object reference ({e!r})") from e
        if len(self.buf) >= 8192:
            self._flush()

    def _flush(self):
        if self.buf:
            self.out.write(b"".join(self.buf))
            self.buf = []

    def close(self) -> None:
        self._flush()

    @property
    def stored(self) -> int:
        return sum(self.names.values())


def read_refs(storage: Storage, remote: str) -> list[tuple[str, int, str]]:
    """(name, stored size, stored sha256) of each object backup `remote` references; StorageError
    if the list cannot be read or is not a whole number of records."""
    path = f"{remote.strip('/')}/{REFS}"
    data = storage.get_bytes(path)
    if len(data) % _RECORD:
        raise StorageError(f"{path}: malformed reference list")
    view = memoryview(data)
    return [(view[i:i + 32].hex(), int.from_bytes(view[i + 32:i + 40], "big"), view[i + 40:i + _RECORD].hex())
            for i in range(0, len(data), _RECORD)]


class Root:
    """The registration of a backup being written (see module docstring), beating in a thread."""

    def __init__(self, storage: Storage, remote: str, clock=time.time) -> None:
        self.storage, self.remote, self.clock = storage, remote.strip("/"), clock
        self.stop_event = threading.Event()
        self.thread = None

    def _beat(self):
        # Not fsync'ed: it keeps sweeps away from a running backup (visibility, not durability);
        # after a power loss the orphans it covered are unreferenced anyway.
        body = json.dumps({"remote": self.remote, "beat": self.clock()}).encode()
        with self.storage.writer(root_path(self.remote), durable=False) as out:
            out.write(body)

    def start(self) -> None:
        self._beat()
        self.thread = threading.Thread(target=self._run, daemon=True, name="backup-root")
        self.thread.start()

    def _run(self):
        while not self.stop_event.wait(HEARTBEAT):
            try:
                self._beat()
            except Exception:  # noqa: BLE001 - the next beat tries again; the backup goes on
                continue

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join()


def uses_store(storage: Storage, remote: str) -> bool | None:
    """Whether complete backup `remote` is a version 4 one (None: it is not complete)."""
    cl = read_checksums(storage, remote)
    if cl is None:
        return None
    return cl.get("store") == STORE


def sweep(storage: Storage, log: Log, keep: Iterable[str] = (), running: Iterable[str] = (),
          now: float | None = None, grace: float = GRACE) -> dict:
    """Delete every object no complete version 4 backup references (see the module docstring).
    `keep`: remote paths of backups Berth keeps (marked too, whether or not they have a root);
    `running`: backups Berth knows are being written (the sweep then waits for another time).
    Returns {"outcome": "ok"|"deferred"|"skipped", "removed", "kept", ...}."""
    now = time.time() if now is None else now
    running = [r for r in running if r]
    if running:
        return {"outcome": "deferred", "reason": f"backup {running[0]} is being written"}
    marked, stale, remotes = set(), [], set()
    try:
        seen = set(storage.list(ROOTS))
        for path in sorted(seen):
            if not _ROOT.fullmatch(path):
                continue
            info = json.loads(storage.get_bytes(path))
            remote, beat = clean_path(info["remote"]), float(info["beat"])
            if storage.exists(remote + CHECKSUMS):
                remotes.add(remote)
            elif now - beat < grace:
                log(f"sweep: backup {remote} is being written; unreferenced objects stay until the next cleanup")
                return {"outcome": "deferred", "reason": f"backup {remote} is being written"}
            else:
                stale.append(path)
        for remote in keep:
            remote = clean_path(remote)
            if uses_store(storage, remote):
                remotes.add(remote)
        for remote in sorted(remotes):
            marked.update(name for name, _, _ in read_refs(storage, remote))
        objects = storage.list(STORE)
        # A backup that started while the store was listed registered itself first: leave it all.
        if any(_ROOT.fullmatch(p) and p not in seen for p in storage.list(ROOTS)):
            log("sweep: a backup started meanwhile; unreferenced objects stay until the next cleanup")
            return {"outcome": "deferred", "reason": "a backup started during the sweep"}
    except (StorageError, ValueError, KeyError, TypeError) as e:
        log(f"sweep: not removing any object ({e})")
        return {"outcome": "skipped", "reason": str(e)}
    removed = 0
    for path in objects:
        m = _OBJECT.fullmatch(path)
        if m and m[1] + m[2] not in marked:
            storage.remove(path)
            removed += 1
    for path in stale:
        storage.remove(path)
    if removed or stale:
        log(f"sweep: removed {removed} unreferenced object(s) and {len(stale)} abandoned backup root(s)")
    return {"outcome": "ok", "removed": removed, "kept": len(marked), "backups": len(remotes),
            "abandoned": len(stale)}


def verify_objects(storage: Storage, remote: str, keyring: Keyring | None, encrypted: bool, full: bool,
                   concurrency: int, reused: frozenset) -> tuple[int, int]:
    """The verify stage of a version 4 backup, once its checksum list's own entries (reference
    list, index) are checked: every object of the reference list read back against its stored
    size and sha256 (full=False, or a name in `reused`: presence and size only), and, when the
    index can be read (not encrypted, or with the key), every reference of the index found in
    the list with the same stored size and sha256, since the sweep keeps what the list names.
    Returns (objects, bytes)."""
    listed = {name: (size, sha) for name, size, sha in read_refs(storage, remote)}
    if full and (keyring is not None or not encrypted):
        suffix = read_checksums(storage, remote)["index"][0]
        with local_copy(storage, remote + suffix) as f:
            for e in index_entries(f, keyring, f"backup {remote}"):
                for ref in e.get("c") or ():
                    if not (isinstance(ref, list) and len(ref) == 4 and isinstance(ref[0], str)
                            and listed.get(ref[0]) == (ref[2], ref[3])):
                        raise StorageError(f"backup {remote}: its reference list does not hold object "
                                           f"{ref[0]} of its index")

    return check_stored(storage, ((name, object_path(name), size, sha) for name, (size, sha) in listed.items()),
                        full, reused, concurrency, "reference list")
