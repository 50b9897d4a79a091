"""tgz and rsync backups of real directory trees, stored on a real folder and on a real local S3
server, restored and compared byte for byte, mode for mode, owner for owner and mtime for mtime."""
import hashlib
import os
import random
import shutil
import stat
import subprocess

import pytest

import backup_storage as bs
from backups import formats as bf
from backups.formats import object_store, rsync_index, streams
from support.harness import tmpfs

ROOT = os.geteuid() == 0
QUIET = lambda message: None  # noqa: E731


# ---- fixtures ----------------------------------------------------------------------------------



_buckets = iter(range(10**6))


@pytest.fixture(params=["filesystem", "s3"])
def storage(request, tmp_path):
    if request.param == "filesystem":
        return bs.FilesystemStorage(str(tmp_path / "store"))
    s3 = request.getfixturevalue("s3")
    bucket = s3.make_bucket(f"formats-{next(_buckets)}")
    return bs.open_storage(bs.validate_config(s3.config(bucket, prefix="berth")))


@pytest.fixture
def fs_storage(tmp_path):
    return bs.FilesystemStorage(str(tmp_path / "store"))


def _text(rnd, n):
    words = [b"backup", b"berth", b"restore", b"lorem", b"ipsum", b"\xc3\xa9t\xc3\xa9", b"data",
             b"0123456789"]
    out = bytearray()
    while len(out) < n:
        out += rnd.choice(words) + b" "
    return bytes(out[:n])


def build_tree(root, small=300, large=10 << 20):
    """Many small files, a large one, empty folders, symlinks, odd names, modes, owners, mtimes,
    a hard link and a fifo. Returns the list of regular small files (relative paths)."""
    rnd = random.Random(5)
    os.makedirs(root, exist_ok=True)
    smalls = []
    for i in range(small):
        rel = f"dir{i % 10:02d}/f{i:03d}.dat"
        os.makedirs(os.path.join(root, os.path.dirname(rel)), exist_ok=True)
        size = 0 if i % 50 == 0 else rnd.randint(1, 8192)
        data = os.urandom(size) if i % 2 else _text(rnd, size)
        with open(os.path.join(root, rel), "wb") as f:
            f.write(data)
        smalls.append(rel)
    if large:
        with open(os.path.join(root, "large.bin"), "wb") as f:
            f.write(os.urandom(large))
    for d in ("empty", "nested/empty/deeper", "links", "odd", "modes", "hl", "special"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    os.symlink("../dir00/f000.dat", os.path.join(root, "links/relative"))
    os.symlink("/etc/hostname", os.path.join(root, "links/absolute"))
    os.symlink("nowhere/at/all", os.path.join(root, "links/dangling"))
    os.symlink("../dir01", os.path.join(root, "links/to-dir"))
    for name in ("with space.txt", "ünïcødé ☃名前.txt", "quote'\"and\\back", "-leading-dash",
                 "new\nline", "x" * 200):
        with open(os.path.join(root, "odd", name), "w") as f:
            f.write(name * 3)
    with open(os.path.join(os.fsencode(root), b"odd/not-utf8-\xff\xfe.bin"), "wb") as f:
        f.write(b"latin-1 name")
    for name, mode in (("private", 0o600), ("exec", 0o755), ("setuid", 0o4755), ("none", 0o000),
                       ("group", 0o640)):
        p = os.path.join(root, "modes", name)
        with open(p, "w") as f:
            f.write(name)
        if ROOT and name in ("setuid", "group"):
            os.chown(p, 1234, 5678)
        os.chmod(p, mode)
    os.makedirs(os.path.join(root, "modes/sticky"))
    os.chmod(os.path.join(root, "modes/sticky"), 0o1777)
    os.makedirs(os.path.join(root, "modes/readonly"))
    with open(os.path.join(root, "modes/readonly/inside"), "w") as f:
        f.write("inside")
    os.chmod(os.path.join(root, "modes/readonly"), 0o555)
    if ROOT:
        os.lchown(os.path.join(root, "links/relative"), 4321, 8765)
    with open(os.path.join(root, "hl/a"), "w") as f:
        f.write("hard linked")
    os.link(os.path.join(root, "hl/a"), os.path.join(root, "hl/b"))
    os.mkfifo(os.path.join(root, "special/fifo"), 0o620)
    # Distinct nanosecond mtimes everywhere, folders last (creating entries changes theirs).
    entries = []
    for folder, dirs, files in os.walk(os.fsencode(root)):
        entries += [os.path.join(folder, n) for n in files + dirs]
    for i, p in enumerate(sorted(entries, key=lambda p: -p.count(b"/"))):
        t = 1_600_000_000_123_456_789 + i * 1_000_003_001
        os.utime(p, ns=(t, t), follow_symlinks=False)
    os.utime(root, ns=(1_500_000_000_987_654_321,) * 2)
    return smalls


def snapshot(root):
    """Everything a restore must bring back, keyed by path (bytes, so any name works)."""
    root = os.fsencode(root)
    out, inodes = {}, {}
    for folder, dirs, files in os.walk(root):
        for p in [folder] + [os.path.join(folder, n) for n in files]:
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            item = {"type": stat.S_IFMT(st.st_mode), "mode": stat.S_IMODE(st.st_mode),
                    "mtime": st.st_mtime_ns}
            if ROOT:
                item.update(uid=st.st_uid, gid=st.st_gid)
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    item["sha256"] = hashlib.sha256(f.read()).hexdigest()
                inodes.setdefault(st.st_ino, []).append(rel)
            elif stat.S_ISLNK(st.st_mode):
                item["target"] = os.readlink(p)
            out[rel] = item
        for n in dirs:   # symlinks to folders are listed in dirs by os.walk
            p = os.path.join(folder, n)
            if os.path.islink(p):
                st = os.lstat(p)
                out[os.path.relpath(p, root)] = {"type": stat.S_IFLNK, "target": os.readlink(p),
                                                 "mtime": st.st_mtime_ns,
                                                 **({"uid": st.st_uid, "gid": st.st_gid} if ROOT else {})}
    out[b"<hard links>"] = sorted(sorted(v) for v in inodes.values() if len(v) > 1)
    return out


def assert_same_tree(a, b, privileged=False):
    """b is a restore of a. Without `privileged`, setuid/setgid bits of files do not come back
    (app data may not plant them), so the one setuid file of build_tree is expected without."""
    sa, sb = snapshot(a), snapshot(b)
    if not privileged and b"modes/setuid" in sa:
        sa[b"modes/setuid"] = {**sa[b"modes/setuid"], "mode": sa[b"modes/setuid"]["mode"] & ~0o6000}
    assert sorted(sa) == sorted(sb)
    for k in sa:
        assert sa[k] == sb[k], k
    assert sa[b"<hard links>"] == [[b"hl/a", b"hl/b"]]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("tree") / "src")
    smalls = build_tree(root)
    return root, smalls


def stored_files(storage):
    return storage.list("")


# ---- round trips -------------------------------------------------------------------------------

@pytest.mark.parametrize("key", [None, "correct horse battery staple"], ids=["plain", "encrypted"])
@pytest.mark.parametrize("fmt", ["tgz", "zstd", "rsync"])
def test_round_trip(fmt, key, storage, tree, tmp_path):
    src, smalls = tree
    before = snapshot(src)
    r = bf.pack(fmt, src, storage, "2026/app_one", key=key, log=QUIET)
    assert r["format"] == fmt and r["encrypted"] == bool(key)
    assert r["checksums"] == "2026/app_one.checksums.json"
    names = stored_files(storage)
    assert names[-1] == "2026/app_one.checksums.json" or "2026/app_one.checksums.json" in names
    # (an rsync backup's registration in the object store, objects/roots/, is not part of it)
    assert r["size"] == sum(storage.size(n) for n in names
                            if not n.endswith(".checksums.json") and not n.startswith("objects/roots/"))
    assert r["uploadedBytes"] == r["size"]
    # smalls, large, odd names, modes, hl/a + hl/b, 4 symlinks, the fifo: every non-folder entry
    assert r["files"] == len(smalls) + 1 + 7 + 6 + 2 + 4 + 1
    if fmt == "tgz":
        assert names == ["2026/app_one.checksums.json", "2026/app_one.tar.gz" + (".enc" if key else "")]
    if key:
        # File names are hidden too: no stored name or byte of the archive's first MiB gives them away.
        joined = "\n".join(names)
        assert not any(word in joined for word in ("dir0", ".dat", "with space", "large", "modes", "odd"))
        with storage.reader(names[-1]) as f:
            head = f.read(1 << 20)
        assert b"dir00" not in head and b"ustar" not in head
    objects = [n for n in names if not n.startswith("objects/roots/")]
    assert bf.verify(fmt, storage, "2026/app_one", key=key) == {"objects": len(objects) - 1, "size": r["size"]}
    dest = str(tmp_path / "restored")
    out = bf.unpack(fmt, storage, "2026/app_one", dest, key=key, log=QUIET)
    assert out["format"] == fmt
    assert_same_tree(src, dest)
    assert snapshot(src) == before   # the backup changed nothing in the source
    bf.remove(fmt, storage, "2026/app_one")
    if fmt == "rsync":   # its objects stay in the shared store until a sweep finds them unreferenced
        assert bf.sweep(storage, QUIET)["removed"] == len(objects) - 3
    assert stored_files(storage) == []


@pytest.mark.parametrize("fmt", ["tgz", "zstd", "rsync"])
def test_wrong_key_fails_clearly_and_touches_nothing(fmt, fs_storage, tmp_path):
    src = str(tmp_path / "src")
    build_tree(src, small=20, large=0)
    bf.pack(fmt, src, fs_storage, "b", key="the right key", log=QUIET)
    dest = str(tmp_path / "dest")
    with pytest.raises(bf.WrongKey, match="wrong encryption key") as e:
        bf.unpack(fmt, fs_storage, "b", dest, key="a wrong key", log=QUIET)
    assert e.value.status == 424
    assert not os.path.exists(dest)
    os.mkdir(dest)
    with pytest.raises(bf.WrongKey, match="wrong encryption key"):
        bf.unpack(fmt, fs_storage, "b", dest, key="a wrong key", log=QUIET)
    assert os.listdir(dest) == []
    with pytest.raises(bf.WrongKey, match="encryption key is needed"):
        bf.unpack(fmt, fs_storage, "b", dest, key=None, log=QUIET)
    with pytest.raises(bf.WrongKey, match="wrong encryption key"):
        bf.verify(fmt, fs_storage, "b", key="a wrong key")
    assert os.listdir(dest) == []
    bf.unpack(fmt, fs_storage, "b", dest, key="the right key", log=QUIET)
    assert_same_tree(src, dest)


def _change_one_percent(src, smalls):
    """Rewrites 1% of the small files (new bytes, one of them a new size); returns their new sizes."""
    changed = smalls[7::100]
    sizes = {}
    for i, rel in enumerate(changed):
        p = os.path.join(src, rel)
        size = os.path.getsize(p) + (100 if i == 0 else 0) or 10
        with open(p, "wb") as f:
            f.write(os.urandom(size))
        sizes[rel] = size
    # A touched file (new mtime, same bytes) is compared by content and not uploaded either.
    os.utime(os.path.join(src, smalls[8]), ns=(1, 1))
    return sizes


@pytest.mark.parametrize("key", [None, "pw"], ids=["plain", "encrypted"])
def test_rsync_second_backup_uploads_only_what_changed(key, storage, tmp_path):
    src = str(tmp_path / "src")
    smalls = build_tree(src, large=2 << 20)
    first = bf.pack("rsync", src, storage, "one", key=key, previous="no/such/backup", log=QUIET)
    assert first["copiedFiles"] == 0 and first["uploadedFiles"] == first["files"] - 6   # not: links, fifo
    sizes = _change_one_percent(src, smalls)
    second = bf.pack("rsync", src, storage, "two", key=key, previous="one", log=QUIET, concurrency=3)
    assert second["uploadedFiles"] == len(sizes) == 3
    assert second["copiedFiles"] == first["uploadedFiles"] - 3
    stored = second["indexBytes"] + second["refsBytes"]
    if key:
        overhead = bf.HEADER.size + bf.TAG   # per small object: header + one chunk tag
        assert second["uploadedBytes"] == sum(sizes.values()) + 3 * overhead + stored
    else:
        assert second["uploadedBytes"] == sum(sizes.values()) + stored
    assert second["uploadedBytes"] < first["uploadedBytes"] * 0.05
    by_path = {}
    for remote in ("one", "two"):
        index_suffix = bf.read_checksums(storage, remote)["index"][0]
        with streams.local_copy(storage, remote + index_suffix) as f:
            entries = rsync_index.index_entries(f, bf.Keyring(key) if key else None, remote)
            by_path[remote] = {e["p"]: e["c"] for e in entries if e["t"] == "f"}
    for rel, refs in by_path["two"].items():
        # an unchanged file names the very objects of the first backup: nothing written for it
        assert (refs == by_path["one"][rel]) == (rel not in sizes), rel
    dest = str(tmp_path / "restored")
    bf.unpack("rsync", storage, "two", dest, key=key, log=QUIET)
    assert_same_tree(src, dest)
    # The first backup is intact, and removing it (and sweeping the store) leaves the second whole.
    bf.remove("rsync", storage, "one")
    assert bf.sweep(storage, QUIET)["outcome"] == "ok"
    bf.verify("rsync", storage, "two", key=key)
    shutil.rmtree(dest)
    bf.unpack("rsync", storage, "two", dest, key=key, log=QUIET)
    assert_same_tree(src, dest)


def test_rsync_no_hardlinks_stores_each_object_once(tmp_path):
    """Without hard links a second backup used to copy every unchanged file; with the shared
    store it writes nothing but its index and reference list."""
    storage = bs.FilesystemStorage(str(tmp_path / "store"), no_hardlinks=True)
    src = str(tmp_path / "src")
    build_tree(src, small=30, large=0)
    first = bf.pack("rsync", src, storage, "one", log=QUIET)
    objects = storage.list("objects")
    second = bf.pack("rsync", src, storage, "two", previous="one", log=QUIET)
    assert second["uploadedFiles"] == 0 and second["copiedFiles"] == first["uploadedFiles"]
    assert second["uploadedObjects"] == 0
    assert set(storage.list("objects")) - set(objects) == {object_store.root_path("two")}
    bf.verify("rsync", storage, "two")


# ---- integrity ---------------------------------------------------------------------------------

def _tamper(storage, s3, path):
    data = bytearray(storage.get_bytes(path))
    data[len(data) // 2] ^= 0x01
    if storage.provider == "filesystem":
        # Rewrite in place (an attacker or bit rot does not go through the writer).
        with open(storage.local_path(path), "r+b") as f:
            f.write(bytes(data))
    else:
        s3.client().put_object(Bucket=storage.bucket, Key=storage.base + path, Body=bytes(data))


@pytest.mark.parametrize("key", [None, "pw"], ids=["plain", "encrypted"])
@pytest.mark.parametrize("fmt", ["tgz", "zstd", "rsync"])
def test_verify_and_restore_detect_a_tampered_object(fmt, key, storage, tmp_path, request):
    s3 = request.getfixturevalue("s3") if storage.provider != "filesystem" else None
    src = str(tmp_path / "src")
    build_tree(src, small=20, large=300_000)
    bf.pack(fmt, src, storage, "b", key=key, log=QUIET)
    bf.verify(fmt, storage, "b", key=key)
    if fmt == "rsync":
        victim = [n for n in storage.list("objects") if storage.size(n) > 200_000][0]
    else:
        victim = [n for n in storage.list("") if n.endswith((".tar.gz", ".tar.zst", ".enc"))][0]
    _tamper(storage, s3, victim)
    with pytest.raises(bs.StorageError, match="checksum mismatch"):
        bf.verify(fmt, storage, "b", key=key)
    assert bf.verify(fmt, storage, "b", key=key, full=False)["objects"] >= 1   # sizes still match
    dest = str(tmp_path / "dest")
    with pytest.raises(bs.StorageError, match="checksum mismatch|corrupted|modified") as e:
        bf.unpack(fmt, storage, "b", dest, key=key, log=QUIET)
    assert not isinstance(e.value, bf.WrongKey)
    assert not os.path.exists(dest)   # a failed restore leaves nothing behind


def test_incomplete_backup_is_never_restored(fs_storage, tmp_path):
    src = str(tmp_path / "src")
    build_tree(src, small=5, large=0)
    for fmt in ("tgz", "zstd", "rsync"):
        bf.pack(fmt, src, fs_storage, f"b-{fmt}", log=QUIET)
        fs_storage.remove(f"b-{fmt}.checksums.json")   # what a crash before the end leaves
        assert bf.read_checksums(fs_storage, f"b-{fmt}") is None
        with pytest.raises(bs.StorageError, match="incomplete"):
            bf.unpack(fmt, fs_storage, f"b-{fmt}", str(tmp_path / fmt), log=QUIET)
        with pytest.raises(bs.StorageError, match="incomplete"):
            bf.verify(fmt, fs_storage, f"b-{fmt}")
        assert not os.path.exists(tmp_path / fmt)


def test_checksum_list_is_written_last(fs_storage, tmp_path):
    src = str(tmp_path / "src")
    build_tree(src, small=10, large=0)
    for fmt in ("tgz", "zstd", "rsync"):
        bf.pack(fmt, src, fs_storage, f"b-{fmt}", log=QUIET)
        mtimes = {n: os.stat(fs_storage.local_path(n)).st_mtime_ns for n in fs_storage.list("")
                  if n.startswith(f"b-{fmt}")}
        last = max(mtimes, key=mtimes.get)
        assert mtimes[last] == mtimes[f"b-{fmt}.checksums.json"]
        cl = bf.read_checksums(fs_storage, f"b-{fmt}")
        assert cl["format"] == fmt and cl["objects"] == len(mtimes) - 1


# ---- full disk, noop, download -----------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["tgz", "zstd", "rsync"])
def test_full_disk_fails_with_the_storage_message_and_leaves_nothing(fmt, tmp_path):
    src = str(tmp_path / "src")
    build_tree(src, small=40, large=3 << 20)
    with tmpfs("size=2m") as disk:
        os.mkdir(os.path.join(disk, "backups"))
        storage = bs.FilesystemStorage(os.path.join(disk, "backups"))
        storage.probe()
        with pytest.raises(bs.StorageError, match="No space left on device") as e:
            bf.pack(fmt, src, storage, "2026/box", log=QUIET)
        assert e.value.status == 424
        left = [os.path.relpath(os.path.join(d, f), disk) for d, _, fs in os.walk(disk) for f in fs]
        # No partial object, no temp file; rsync's complete objects wait in the shared store for
        # the sweep, which removes them (no backup references them).
        assert all(fmt == "rsync" and p.startswith("backups/objects/") and ".berth-tmp-" not in p for p in left)
        if fmt == "rsync":
            assert not [p for p in left if p.startswith("backups/objects/roots/")]
            assert bf.sweep(storage, QUIET)["outcome"] == "ok"
            assert [f for _, _, fs in os.walk(disk) for f in fs] == []
        assert bf.read_checksums(storage, "2026/box") is None


def test_noop_storage(tmp_path):
    src = str(tmp_path / "src")
    build_tree(src, small=3, large=0)
    storage = bs.open_storage({"provider": "noop"})
    for fmt in ("tgz", "zstd", "rsync"):
        r = bf.pack(fmt, src, storage, "b", log=QUIET)
        assert r["size"] == 0 and r["uploadedBytes"] == 0
        with pytest.raises(bs.StorageError):
            bf.unpack(fmt, storage, "b", str(tmp_path / "dest"), log=QUIET)


def test_download_is_a_standard_tar_gz(storage, tmp_path):
    src = str(tmp_path / "src")
    build_tree(src, small=30, large=1 << 20)
    r = bf.pack("tgz", src, storage, "dl", log=QUIET)
    archive = tmp_path / "download.tar.gz"
    with open(archive, "wb") as f:
        for chunk in bf.download_stream("tgz", storage, "dl"):
            f.write(chunk)
    assert archive.stat().st_size == r["size"]
    # Plain GNU tar reads it (the gzip members are standard), and gets the same tree back.
    dest = tmp_path / "plain-tar"
    dest.mkdir()
    subprocess.run(["tar", "-xzf", str(archive), "-C", str(dest), "--numeric-owner"], check=True)
    assert_same_tree(src, str(dest), privileged=True)
    with pytest.raises(bs.StorageError, match="only tgz"):
        next(bf.download_stream("rsync", storage, "dl"))


def test_restore_target_must_be_empty(fs_storage, tmp_path):
    src = str(tmp_path / "src")
    build_tree(src, small=3, large=0)
    bf.pack("tgz", src, fs_storage, "b", log=QUIET)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep").write_text("x")
    with pytest.raises(bs.StorageError, match="not empty"):
        bf.unpack("tgz", fs_storage, "b", str(dest), log=QUIET)
    assert (dest / "keep").read_text() == "x"
