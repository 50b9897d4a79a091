"""The shared object store of rsync backups (index version 4) and its sweep: an object that a kept
backup, or a backup being written, references is never removed; the objects of removed backups
and the orphans of a killed backup go once nothing references them; doubt removes nothing."""
import os
import random
import signal
import time

import pytest

import backup_storage as bs
from backups import formats as bf
from backups.formats import object_store
from support.data_tree import snapshot

QUIET = lambda message: None  # noqa: E731


def _tree(root, seed, files=40, size=6000):
    rnd = random.Random(seed)
    os.makedirs(root, exist_ok=True)
    for i in range(files):
        with open(os.path.join(root, f"f{i:04d}.dat"), "wb") as f:
            f.write(rnd.randbytes(rnd.randint(1, size)))
    return root


def _objects(storage):
    return {p for p in storage.list(object_store.STORE) if not p.startswith(object_store.ROOTS + "/")}


def _referenced(storage, remote):
    return {object_store.object_path(n) for n, _, _ in object_store.read_refs(storage, remote)}


def _restores(storage, remote, src, tmp_path, key=None):
    dest = str(tmp_path / f"restored-{remote.replace('/', '-')}-{time.monotonic_ns()}")
    bf.unpack("rsync", storage, remote, dest, key=key, log=QUIET)
    assert snapshot(dest, skip=(), with_root=True) == snapshot(src, skip=(), with_root=True)


@pytest.mark.parametrize("key", [None, "pw"], ids=["plain", "encrypted"])
def test_sweep_removes_only_objects_no_kept_backup_references(key, tmp_path):
    storage = bs.FilesystemStorage(str(tmp_path / "store"))
    a, b = _tree(str(tmp_path / "a"), 1), _tree(str(tmp_path / "b"), 2)
    bf.pack("rsync", a, storage, "t1/app_a", key=key, log=QUIET)
    bf.pack("rsync", b, storage, "t1/app_b", key=key, log=QUIET)
    for i in range(5):   # a's second backup: five files rewritten
        with open(os.path.join(a, f"f{i:04d}.dat"), "wb") as f:
            f.write(os.urandom(3000))
    bf.pack("rsync", a, storage, "t2/app_a", key=key, previous="t1/app_a", log=QUIET)
    only_old = _referenced(storage, "t1/app_a") - _referenced(storage, "t2/app_a")
    assert len(only_old) == 5
    # Deleting one backup removes its folder and registration, never an object.
    bf.remove("rsync", storage, "t1/app_a")
    assert only_old <= _objects(storage)
    swept = bf.sweep(storage, QUIET)
    assert swept["outcome"] == "ok" and swept["removed"] == 5 and swept["backups"] == 2
    assert _objects(storage) == _referenced(storage, "t2/app_a") | _referenced(storage, "t1/app_b")
    _restores(storage, "t2/app_a", a, tmp_path, key)
    _restores(storage, "t1/app_b", b, tmp_path, key)
    assert bf.sweep(storage, QUIET)["removed"] == 0


def test_sweep_marks_the_backups_berth_keeps_even_without_their_registration(tmp_path):
    """A kept backup whose root went missing (removed by hand) still has its objects marked
    through the rows Berth keeps (`keep`)."""
    storage = bs.FilesystemStorage(str(tmp_path / "store"))
    src = _tree(str(tmp_path / "src"), 3)
    bf.pack("rsync", src, storage, "t1/app_a", log=QUIET)
    storage.remove(object_store.root_path("t1/app_a"))
    before = _objects(storage)
    assert bf.sweep(storage, QUIET, keep=["t1/app_a"])["removed"] == 0
    assert _objects(storage) == before
    _restores(storage, "t1/app_a", src, tmp_path)


def test_sweep_waits_while_a_backup_is_being_written(tmp_path):
    storage = bs.FilesystemStorage(str(tmp_path / "store"))
    src = _tree(str(tmp_path / "src"), 4)
    bf.pack("rsync", src, storage, "t1/app_a", log=QUIET)
    kept = _objects(storage)
    # What a backup in progress has done so far: registered, then written an object no index names yet.
    root = object_store.Root(storage, "t2/app_a")
    root.start()
    try:
        orphan = object_store.object_path("ab" * 32)
        assert storage.create(orphan, b"not yet referenced")
        bf.remove("rsync", storage, "t1/app_a")   # even with nothing left to keep
        swept = bf.sweep(storage, QUIET)
        assert swept["outcome"] == "deferred" and "t2/app_a" in swept["reason"]
        assert _objects(storage) == kept | {orphan}
    finally:
        root.stop()
    # Berth's own rows say a backup is running: the sweep waits too.
    assert bf.sweep(storage, QUIET, running=["t3/app_b"])["outcome"] == "deferred"
    assert _objects(storage) == kept | {orphan}


def test_sweep_removes_nothing_when_in_doubt(tmp_path):
    storage = bs.FilesystemStorage(str(tmp_path / "store"))
    src = _tree(str(tmp_path / "src"), 5)
    bf.pack("rsync", src, storage, "t1/app_a", log=QUIET)
    bf.pack("rsync", _tree(str(tmp_path / "other"), 6), storage, "t1/app_b", log=QUIET)
    before = _objects(storage)
    storage.remove("t1/app_b/" + object_store.REFS)   # a complete backup whose reference list is gone
    assert bf.sweep(storage, QUIET)["outcome"] == "skipped"
    storage.put_bytes(object_store.root_path("t1/app_b"), b"{not json")
    assert bf.sweep(storage, QUIET)["outcome"] == "skipped"
    assert _objects(storage) == before


def _pack_until_killed(src, store_root):
    """A backup process killed (SIGKILL) once it has written a few objects: what a crash leaves."""
    pid = os.fork()
    if pid == 0:   # the child: a backup, slowed down so the parent catches it half-way
        try:
            os.nice(19)
            bf.pack("rsync", src, bs.FilesystemStorage(store_root), "t2/app_a", log=QUIET, concurrency=1)
        finally:
            os._exit(0)
    storage = bs.FilesystemStorage(store_root)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not storage.exists("t2/app_a.checksums.json"):
        if len(_objects(storage)) >= 20 and storage.exists(object_store.root_path("t2/app_a")):
            break
        time.sleep(0.002)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def test_a_killed_backups_orphans_are_removed_later_and_reuse_keeps_them(tmp_path):
    storage = bs.FilesystemStorage(str(tmp_path / "store"))
    src = _tree(str(tmp_path / "src"), 7, files=3000, size=4000)
    _pack_until_killed(src, storage.root)
    assert bf.read_checksums(storage, "t2/app_a") is None, "the backup finished before it was killed"
    orphans = _objects(storage)
    assert len(orphans) >= 20
    # Its registration is fresh: it could be a backup still running on another server.
    assert bf.sweep(storage, QUIET)["outcome"] == "deferred"
    assert _objects(storage) == orphans
    # An hour without a beat: the backup died. Its orphans go, with its registration.
    later = time.time() + object_store.GRACE + 1
    swept = bf.sweep(storage, QUIET, now=later)
    assert swept["outcome"] == "ok" and swept["removed"] == len(orphans) and swept["abandoned"] == 1
    assert _objects(storage) == set() and storage.list(object_store.ROOTS) == []

    # Killed again; this time the next backup finds the orphans there and uses them as they are.
    _pack_until_killed(src, storage.root)
    orphans = _objects(storage)
    done = bf.pack("rsync", src, storage, "t3/app_a", log=QUIET)
    assert done["uploadedObjects"] == len(_objects(storage)) - len(orphans)
    assert orphans <= _referenced(storage, "t3/app_a")
    swept = bf.sweep(storage, QUIET, now=later)
    assert swept["outcome"] == "ok" and swept["removed"] == 0 and swept["abandoned"] == 1
    bf.verify("rsync", storage, "t3/app_a")
    _restores(storage, "t3/app_a", src, tmp_path)


def test_an_object_is_never_replaced_once_stored(tmp_path):
    """Storage.create: the first complete object stays (another backup may have recorded its
    stored sha256); a damaged one found by a backup is rewritten, since it is unusable anyway."""
    storage = bs.FilesystemStorage(str(tmp_path / "store"))
    assert storage.create("objects/aa/x", b"first") is True
    assert storage.create("objects/aa/x", b"second") is False
    assert storage.get_bytes("objects/aa/x") == b"first"
    assert not [n for n in os.listdir(storage.local_path("objects/aa")) if n.startswith(bs.TMP_PREFIX)]
    src = _tree(str(tmp_path / "src"), 8, files=3)
    first = bf.pack("rsync", src, storage, "one", log=QUIET)
    names = {n: size for n, size, _ in object_store.read_refs(storage, "one")}
    victim = sorted(names)[0]
    with open(storage.local_path(object_store.object_path(victim)), "r+b") as f:
        f.write(b"\0" * 8)   # damaged in place
    second = bf.pack("rsync", src, storage, "two", log=QUIET)   # no previous: reads everything
    assert second["uploadedObjects"] == 1 and first["uploadedObjects"] == 3
    _restores(storage, "two", src, tmp_path)
    _restores(storage, "one", src, tmp_path)   # the rewritten object holds what one recorded too
