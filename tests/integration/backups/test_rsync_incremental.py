"""Incremental rsync backups (index version 4, the shared object store): a change costs what
changed (an append to a large file stores its last chunks only), every backup restores byte for
byte, removing older backups (and sweeping the store) leaves newer ones whole, encrypted chunks
hide their content, backups of an earlier format (version 2) still restore and serve as the
previous backup, and chunk references in an index are treated as the hostile input they can be."""
import gzip
import hashlib
import json
import os
import random
import shutil
import tarfile

import pytest

import backup_storage as bs
from backups import formats as bf
from backups.formats import chunking, object_store, rsync_index, streams
from support.data_tree import snapshot

QUIET = lambda message: None  # noqa: E731
FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "rsync_v2.tar.gz")
LOG = 12 << 20


def _tree(root):
    rnd = random.Random(3)
    os.makedirs(os.path.join(root, "app", "logs"))
    with open(os.path.join(root, "app", "logs", "app.log"), "wb") as f:
        f.write(rnd.randbytes(LOG))
    for i in range(40):
        with open(os.path.join(root, "app", f"f{i:02d}.dat"), "wb") as f:
            f.write(rnd.randbytes(rnd.randint(0, 20000)))
    os.symlink("logs/app.log", os.path.join(root, "app", "current.log"))
    return root


def _index(storage, remote, key=None):
    suffix = bf.read_checksums(storage, remote)["index"][0]
    with streams.local_copy(storage, remote + suffix) as f:
        return {e["p"]: e for e in rsync_index.index_entries(f, bf.Keyring(key) if key else None, remote)}


def _restore_same(storage, remote, expected, tmp_path, key=None):
    dest = str(tmp_path / f"restored-{remote.replace('/', '-')}")
    bf.unpack("rsync", storage, remote, dest, key=key, log=QUIET)
    assert snapshot(dest, skip=(), with_root=True) == expected
    shutil.rmtree(dest)


def _storage(provider, request, tmp_path):
    if provider == "filesystem":
        return bs.FilesystemStorage(str(tmp_path / "store"))
    s3 = request.getfixturevalue("s3")
    bucket = s3.make_bucket(f"incremental-{os.urandom(4).hex()}")
    return bs.open_storage(bs.validate_config(s3.config(bucket, prefix="berth")))


# S3 with the plain backup only: encryption is the same code on every storage.
@pytest.mark.parametrize("provider, key", [("filesystem", None), ("filesystem", "pw"), ("s3", None)],
                         ids=["filesystem-plain", "filesystem-encrypted", "s3-plain"])
def test_rsync_append_edit_add_remove_chmod_store_what_changed(provider, key, request, tmp_path):
    storage = _storage(provider, request, tmp_path)
    src = _tree(str(tmp_path / "src"))
    first = bf.pack("rsync", src, storage, "one", key=key, log=QUIET)
    assert first["uploadedChunks"] >= 3 and first["copiedChunks"] == 0
    one = snapshot(src, skip=(), with_root=True)

    log = os.path.join(src, "app", "logs", "app.log")
    with open(log, "ab") as f:
        f.write(os.urandom(300_000))
    with open(os.path.join(src, "app", "f03.dat"), "wb") as f:
        f.write(os.urandom(5000))
    os.unlink(os.path.join(src, "app", "f04.dat"))
    with open(os.path.join(src, "app", "new.dat"), "wb") as f:
        f.write(os.urandom(7000))
    os.chmod(os.path.join(src, "app", "f05.dat"), 0o600)
    changed = 300_000 + 5000 + 7000
    second = bf.pack("rsync", src, storage, "two", key=key, previous="one", log=QUIET, concurrency=3)
    assert second["uploadedChunks"] <= 2 and second["copiedChunks"] >= first["uploadedChunks"] - 2
    assert second["uploadedBytes"] - second["indexBytes"] <= changed + 2 * chunking.MAX
    assert second["uploadedBytes"] < 0.3 * first["uploadedBytes"]
    two = snapshot(src, skip=(), with_root=True)

    with open(log, "r+b") as f:   # an edit in the middle: one or two chunks
        f.seek(LOG // 2)
        f.write(b"edited" * 10)
    third = bf.pack("rsync", src, storage, "three", key=key, previous="two", log=QUIET)
    assert third["uploadedChunks"] <= 2 and third["uploadedFiles"] == 1
    three = snapshot(src, skip=(), with_root=True)

    a = _index(storage, "one", key)["app/logs/app.log"]["c"]
    b = _index(storage, "two", key)["app/logs/app.log"]["c"]
    assert a[:-1] == b[:len(a) - 1]   # unchanged chunks: the very objects of the first backup
    for remote, expected in (("one", one), ("two", two), ("three", three)):
        bf.verify("rsync", storage, remote, key=key)
        _restore_same(storage, remote, expected, tmp_path, key)


@pytest.mark.parametrize("no_hardlinks", [False, True], ids=["hard-links", "copies"])
def test_rsync_removing_older_backups_keeps_the_chunks_newer_ones_use(no_hardlinks, tmp_path):
    """Retention removes a backup's own folder; the sweep then removes only the objects no
    remaining backup references, so a newer one never loses one."""
    storage = bs.FilesystemStorage(str(tmp_path / "store"), no_hardlinks=no_hardlinks)
    src = _tree(str(tmp_path / "src"))
    bf.pack("rsync", src, storage, "2026-01/app_a", log=QUIET)
    with open(os.path.join(src, "app", "logs", "app.log"), "ab") as f:
        f.write(b"more\n" * 1000)
    second = bf.pack("rsync", src, storage, "2026-02/app_a", previous="2026-01/app_a", log=QUIET)
    assert second["copiedChunks"] >= 3
    bf.pack("rsync", src, storage, "2026-03/app_a", previous="2026-02/app_a", log=QUIET)
    expected = snapshot(src, skip=(), with_root=True)
    bf.remove("rsync", storage, "2026-01/app_a")
    bf.remove("rsync", storage, "2026-02/app_a")
    swept = bf.sweep(storage, QUIET)
    assert swept["outcome"] == "ok" and swept["removed"] >= 1 and swept["backups"] == 1
    left = [p for p in storage.list("") if not p.startswith("2026-03/")]
    names = {n for n, _, _ in object_store.read_refs(storage, "2026-03/app_a")}
    assert sorted(left) == sorted([object_store.root_path("2026-03/app_a")]
                                  + [object_store.object_path(n) for n in names])
    bf.verify("rsync", storage, "2026-03/app_a")
    _restore_same(storage, "2026-03/app_a", expected, tmp_path)


def test_rsync_encrypted_chunks_hide_their_content_and_names(tmp_path):
    storage = bs.FilesystemStorage(str(tmp_path / "store"))
    src = str(tmp_path / "src")
    os.makedirs(src)
    marker = b"PLAINTEXT-MARKER-" * 1000
    body = marker + os.urandom(6 << 20)
    with open(os.path.join(src, "secret.db"), "wb") as f:
        f.write(body)
    bf.pack("rsync", src, storage, "enc", key="pw", log=QUIET)
    chunk_names = {p[len("objects/"):].replace("/", "") for p in storage.list("objects")
                   if not p.startswith("objects/roots/")}
    assert chunk_names
    plain_names = {chunking.name_of(c, None) for c in _plain_chunks(body)}
    plain_names |= {hashlib.sha256(c).hexdigest() for c in _plain_chunks(body)}
    assert not chunk_names & plain_names   # names are keyed hashes, not hashes anyone can check
    for p in storage.list(""):
        assert b"PLAINTEXT-MARKER" not in storage.get_bytes(p)
        assert "secret" not in p
    # The next backup keeps the salt, so unchanged chunks keep their names and are linked.
    second = bf.pack("rsync", src, storage, "enc2", key="pw", previous="enc", log=QUIET)
    assert second["uploadedChunks"] == 0 and second["copiedChunks"] == len(chunk_names)
    # Another password: nothing is reused, everything still restores with it.
    third = bf.pack("rsync", src, storage, "enc3", key="other", previous="enc2", log=QUIET)
    assert third["copiedChunks"] == 0 and third["uploadedChunks"] == len(chunk_names)
    with pytest.raises(bf.WrongKey):
        bf.unpack("rsync", storage, "enc2", str(tmp_path / "wrong"), key="other", log=QUIET)
    assert not (tmp_path / "wrong").exists()
    expected = snapshot(src, skip=(), with_root=True)
    _restore_same(storage, "enc2", expected, tmp_path, "pw")
    _restore_same(storage, "enc3", expected, tmp_path, "other")


def _plain_chunks(data):
    import tempfile
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.flush()
        return [bytes(c) for c in chunking.cut(f.fileno(), len(data))]


# ---- the previous format -------------------------------------------------------------------------

@pytest.fixture
def v2_store(tmp_path):
    """Backups made by the rsync code before index version 3 (commit 6a18b81: one object per
    file, a 4.8 MB log stored whole; v2/plain, and v2/encrypted with "old password" without the
    log): fixtures/rsync_v2.tar.gz."""
    with tarfile.open(FIXTURE) as t:
        t.extractall(tmp_path, filter="tar")
    return bs.FilesystemStorage(str(tmp_path / "store"))


def test_rsync_v2_backups_still_restore_and_serve_as_previous(v2_store, tmp_path):
    assert _index(v2_store, "v2/plain")["data/app.log"]["o"] == "files/data/app.log"
    dest = tmp_path / "plain"
    bf.unpack("rsync", v2_store, "v2/plain", str(dest), log=QUIET)
    assert (dest / "data" / "app.log").read_bytes() == b"an old log line\n" * 300_000
    assert (dest / "data" / "sub" / "small.txt").read_bytes() == b"small file\n"
    assert os.readlink(dest / "data" / "link") == "sub/small.txt"
    assert os.stat(dest / "data" / "hard").st_ino == os.stat(dest / "data" / "sub" / "small.txt").st_ino
    assert os.stat(dest / "data" / "app.log").st_mtime_ns == 1_700_000_000_123_456_789
    assert os.stat(dest / "data" / "sub" / "small.txt").st_mode & 0o777 == 0o640
    enc = tmp_path / "enc"
    with pytest.raises(bf.WrongKey):
        bf.unpack("rsync", v2_store, "v2/encrypted", str(enc), key="new password", log=QUIET)
    bf.unpack("rsync", v2_store, "v2/encrypted", str(enc), key="old password", log=QUIET)
    assert (enc / "data" / "sub" / "small.txt").read_bytes() == b"small file\n"
    # A version 4 backup against the version 2 one: the same small file is linked into the store
    # (not uploaded again), the log chunked.
    new = bf.pack("rsync", str(dest), v2_store, "v4/plain", previous="v2/plain", log=QUIET)
    assert new["copiedFiles"] >= 1 and new["uploadedChunks"] >= 1
    assert _index(v2_store, "v4/plain")["data/app.log"]["c"]
    expected = snapshot(str(dest), skip=(), with_root=True)
    _restore_same(v2_store, "v4/plain", expected, tmp_path)
    new_enc = bf.pack("rsync", str(enc), v2_store, "v4/enc", key="old password", previous="v2/encrypted",
                      log=QUIET)
    assert new_enc["copiedFiles"] >= 1
    _restore_same(v2_store, "v4/enc", snapshot(str(enc), skip=(), with_root=True), tmp_path, "old password")
    # The version 2 backups stay whole when version 4 ones are swept away, and vice versa.
    bf.remove("rsync", v2_store, "v4/plain")
    assert bf.sweep(v2_store, QUIET)["outcome"] == "ok"
    _restore_same(v2_store, "v4/enc", snapshot(str(enc), skip=(), with_root=True), tmp_path, "old password")
    bf.unpack("rsync", v2_store, "v2/plain", str(tmp_path / "again"), log=QUIET)
    assert (tmp_path / "again" / "data" / "app.log").read_bytes() == b"an old log line\n" * 300_000


# ---- hostile chunk references ----------------------------------------------------------------------

def _rewrite(storage, remote, change):
    """Rewrite an unencrypted backup's index with change(entries) and its checksum list to
    match, as whoever can write to the storage can (no key is needed for an unencrypted one)."""
    list_path = storage.local_path(remote + bf.CHECKSUMS)
    with open(list_path) as f:
        rows = [json.loads(line) for line in f]
    suffix = rows[0]["index"][0]
    with open(storage.local_path(remote + suffix), "rb") as f:
        entries = [json.loads(line) for line in gzip.decompress(f.read()).splitlines()]
    entries = change(entries, rows)
    data = gzip.compress(b"".join(json.dumps(e).encode() + b"\n" for e in entries))
    with open(storage.local_path(remote + suffix), "wb") as f:
        f.write(data)
    entry = [suffix, len(data), hashlib.sha256(data).hexdigest()]
    rows[0]["index"] = entry
    rows = [entry if isinstance(r, list) and r[0] == suffix else r for r in rows]
    with open(list_path, "w") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))


def _big_file(src):
    os.makedirs(src)
    with open(os.path.join(src, "big"), "wb") as f:
        f.write(random.Random(9).randbytes(9 << 20))


@pytest.mark.parametrize("name", ["../../../../etc/passwd", "files/big", "/" + "a" * 63, "A" * 64])
def test_rsync_restore_refuses_a_chunk_reference_that_is_a_path(name, tmp_path):
    storage = bs.FilesystemStorage(str(tmp_path / "store"))
    src = str(tmp_path / "src")
    _big_file(src)
    bf.pack("rsync", src, storage, "evil", log=QUIET)

    def change(entries, rows):
        for e in entries:
            if e.get("p") == "big":
                e["c"][0][0] = name
        return entries
    _rewrite(storage, "evil", change)
    dest = tmp_path / "dest"
    with pytest.raises(bf.BackupRefused, match="not a chunk name"):
        bf.unpack("rsync", storage, "evil", str(dest), log=QUIET)
    assert not dest.exists()


def test_rsync_restore_refuses_chunks_that_do_not_add_up_to_the_file(tmp_path):
    storage = bs.FilesystemStorage(str(tmp_path / "store"))
    src = str(tmp_path / "src")
    _big_file(src)
    bf.pack("rsync", src, storage, "evil", log=QUIET)

    def change(entries, rows):
        for e in entries:
            if e.get("p") == "big":
                e["s"] += 1   # a restore that trusted the chunks would write another size
        return entries
    _rewrite(storage, "evil", change)
    with pytest.raises(bf.BackupRefused, match="add up"):
        bf.unpack("rsync", storage, "evil", str(tmp_path / "dest"), log=QUIET)
    assert not (tmp_path / "dest").exists()


def test_rsync_restore_refuses_a_chunk_swapped_for_another(tmp_path):
    """Whoever can write to the storage puts one chunk's bytes under another's name and makes
    list and index agree on the stored size and sha256: the chunk's name still gives it away."""
    storage = bs.FilesystemStorage(str(tmp_path / "store"))
    src = str(tmp_path / "src")
    _big_file(src)
    bf.pack("rsync", src, storage, "evil", log=QUIET)
    refs = _index(storage, "evil")["big"]["c"]
    victim, donor = refs[0], refs[1]
    donor_bytes = storage.get_bytes(object_store.object_path(donor[0]))
    with open(storage.local_path(object_store.object_path(victim[0])), "wb") as f:
        f.write(donor_bytes)
    forged = [len(donor_bytes), hashlib.sha256(donor_bytes).hexdigest()]

    def change(entries, rows):
        for e in entries:
            if e.get("p") == "big":
                e["c"][0][1:] = [forged[0], *forged]
                e["c"][-1][1] += victim[1] - forged[0]   # keep the sizes adding up
        for r in rows:
            if isinstance(r, list) and r[0] == "/" + chunking.chunk_path(victim[0]):
                r[1:] = forged
        return entries
    _rewrite(storage, "evil", change)
    with pytest.raises(bs.StorageError, match="does not hold what its name says"):
        bf.unpack("rsync", storage, "evil", str(tmp_path / "dest"), log=QUIET)
    assert not (tmp_path / "dest").exists()


def test_rsync_verify_reads_back_what_the_backup_wrote_and_checks_what_it_reuses(tmp_path):
    """pack lists the objects it reuses from the store; verify checks those by presence and size
    (their bytes were read back when they were written) and re-reads the rest: a corrupted new
    object still fails, a reused one truncated or gone fails too, and so does a reference list
    that misses an object of the index (the sweep would remove it)."""
    storage = bs.FilesystemStorage(str(tmp_path / "store"))
    src = _tree(str(tmp_path / "src"))
    bf.pack("rsync", src, storage, "one", log=QUIET)
    with open(os.path.join(src, "app", "f07.dat"), "wb") as f:
        f.write(b"changed" * 100)
    second = bf.pack("rsync", src, storage, "two", previous="one", log=QUIET)
    reused = frozenset(second["reused"])
    listed = {name for name, _, _ in object_store.read_refs(storage, "two")}
    assert len(reused) >= 40 and reused < listed
    assert bf.verify("rsync", storage, "two", reused=reused) == bf.verify("rsync", storage, "two")
    changed = sorted(listed - reused)
    assert len(changed) == 1   # f07.dat, the one object this backup wrote

    def rewrite(name, how):
        path = storage.local_path(object_store.object_path(name))
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(how(data))
        return path, data

    # The new object, same size but one bit flipped: read back, refused.
    path, data = rewrite(changed[0], lambda d: bytes([d[0] ^ 1]) + d[1:])
    with pytest.raises(bs.StorageError, match="checksum mismatch"):
        bf.verify("rsync", storage, "two", reused=reused)
    with open(path, "wb") as f:
        f.write(data)
    # A reused object truncated, then gone: refused by its size, then by its absence.
    path, whole = rewrite(min(reused), lambda d: d[:-1])
    with pytest.raises(bs.StorageError, match="size"):
        bf.verify("rsync", storage, "two", reused=reused)
    os.unlink(path)
    with pytest.raises(bs.StorageError):
        bf.verify("rsync", storage, "two", reused=reused)
    with open(path, "wb") as f:
        f.write(whole)
    bf.verify("rsync", storage, "two", reused=reused)
    # A reference list without one of the index's objects: refused (the list matches the checksum
    # list, as whoever writes to an unencrypted storage can arrange).
    refs_path = storage.local_path(f"two/{object_store.REFS}")
    with open(refs_path, "rb") as f:
        data = f.read()[72:]   # the first record (name, stored size, stored sha256) dropped
    with open(refs_path, "wb") as f:
        f.write(data)
    list_path = storage.local_path("two" + bf.CHECKSUMS)
    with open(list_path) as f:
        rows = [json.loads(line) for line in f]
    rows = [["/" + object_store.REFS, len(data), hashlib.sha256(data).hexdigest()]
            if isinstance(r, list) and r[0] == "/" + object_store.REFS else r for r in rows]
    with open(list_path, "w") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(bs.StorageError, match="reference list does not hold"):
        bf.verify("rsync", storage, "two")


def test_rsync_index_keeps_scan_order_whoever_reads_the_changed_files(monkeypatch, tmp_path):
    """A changed small file among unchanged ones is read on the scan thread, the changed large
    file and a folder where most files changed go to the pool, and entries wait behind them
    (here at most 3, so the scan also waits): the index stays in scan order and restores the tree."""
    from backups.formats import rsync
    storage = bs.FilesystemStorage(str(tmp_path / "store"))
    src = _tree(str(tmp_path / "src"))
    busy = os.path.join(src, "busy")
    os.makedirs(busy)
    for i in range(20):
        with open(os.path.join(busy, f"b{i:02d}.dat"), "wb") as f:
            f.write(os.urandom(3000))
    bf.pack("rsync", src, storage, "one", key=None, log=QUIET)

    with open(os.path.join(src, "app", "logs", "app.log"), "ab") as f:
        f.write(os.urandom(100_000))
    for name in ("f10.dat", "f30.dat"):
        with open(os.path.join(src, "app", name), "wb") as f:
            f.write(os.urandom(4000))
    for i in range(20):
        with open(os.path.join(busy, f"b{i:02d}.dat"), "wb") as f:
            f.write(os.urandom(3000))
    inline = []
    took = rsync._Inline.took
    monkeypatch.setattr(rsync._Inline, "took", lambda self, s: (inline.append(s), took(self, s)))
    monkeypatch.setattr(rsync, "BACKLOG", 3)
    second = bf.pack("rsync", src, storage, "two", key=None, previous="one", log=QUIET, concurrency=2)
    assert 1 <= len(inline) < 22 and second["uploadedFiles"] == 23, (len(inline), second)

    suffix = bf.read_checksums(storage, "two")["index"][0]
    with streams.local_copy(storage, "two" + suffix) as f:
        paths = [e["p"] for e in rsync_index.index_entries(f, None, "two")]
    assert paths == sorted(paths, key=rsync_index.order_key) and len(paths) == len(set(paths))
    _restore_same(storage, "two", snapshot(src, skip=(), with_root=True), tmp_path)
