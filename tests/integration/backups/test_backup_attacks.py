"""Attacks on backups from the security review, replayed against real files (as root): a crafted
rsync index (finding 1), a hostile app racing the rsync scan (finding 2), a backup swapped or a
checksum list rewritten in the storage by someone without the key (finding 3), and device nodes
or setuid files planted in app data (finding 7, the restore half)."""
import gzip
import hashlib
import json
import os
import stat
import threading
import time

import pytest

import backup_storage as bs
from backups import formats as bf
from backups.formats.rsync_scan import Scan, read_capped

ROOT = os.geteuid() == 0
QUIET = lambda message: None  # noqa: E731
needs_root = pytest.mark.skipif(not ROOT, reason="device nodes and owners need root")


@pytest.fixture
def storage(tmp_path):
    return bs.FilesystemStorage(str(tmp_path / "store"))


def listing(folder):
    """Every path below `folder` with its type, owner and size: what an attack could change."""
    out = {}
    for d, dirs, files in os.walk(folder):
        for n in dirs + files:
            st = os.lstat(os.path.join(d, n))
            out[os.path.relpath(os.path.join(d, n), folder)] = (stat.S_IFMT(st.st_mode), st.st_uid,
                                                                 st.st_size, st.st_nlink)
    return out


def craft_rsync(storage, remote, src, extra):
    """What craft.py of the review does: a real rsync backup of `src` whose index gets `extra`
    entries appended, the checksum list rewritten to match (no key is needed for that)."""
    bf.pack("rsync", src, storage, remote, log=QUIET)
    list_path = storage.local_path(remote + bf.CHECKSUMS)
    with open(list_path) as f:
        rows = [json.loads(line) for line in f]
    suffix = rows[0]["index"][0]
    with open(storage.local_path(remote + suffix), "rb") as f:
        lines = gzip.decompress(f.read()).splitlines()
    lines += [json.dumps({"m": 0o644, "u": 0, "g": 0, "mt": time.time_ns(), **e}).encode() for e in extra]
    data = gzip.compress(b"\n".join(lines) + b"\n")
    with open(storage.local_path(remote + suffix), "wb") as f:
        f.write(data)
    entry = [suffix, len(data), hashlib.sha256(data).hexdigest()]
    rows[0]["index"] = entry
    rows = [entry if isinstance(r, list) and r[0] == suffix else r for r in rows]
    with open(list_path, "w") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))


# ---- finding 1: a crafted rsync index --------------------------------------------------------

PLANTED = {
    "symlink": {"p": "esc/planted-symlink", "t": "l", "l": "/etc/hostname"},
    "hardlink": {"p": "esc/planted-hardlink", "t": "h", "l": "payload"},
    "device": {"p": "esc/planted-device", "t": "n", "k": stat.S_IFCHR, "r": os.makedev(1, 3)},
    "fifo": {"p": "esc/planted-fifo", "t": "n", "k": stat.S_IFIFO, "r": 0},
    # The other way round: a hard link *from* the host folder into the restore.
    "hardlink-source": {"p": "stolen", "t": "h", "l": "esc/host-secret"},
}


@needs_root
@pytest.mark.parametrize("privileged", [False, True], ids=["app", "privileged"])
@pytest.mark.parametrize("planted", sorted(PLANTED))
def test_rsync_restore_through_planted_symlink_writes_nothing_outside(planted, privileged, storage, tmp_path):
    outside = tmp_path / "host-folder"
    outside.mkdir()
    (outside / "host-secret").write_text("host only\n")
    os.chmod(outside / "host-secret", 0o600)
    src = tmp_path / "src"
    src.mkdir()
    (src / "payload").write_text("written by a crafted backup\n")
    craft_rsync(storage, "evil", str(src), [{"p": "esc", "t": "l", "l": str(outside)}, PLANTED[planted]])
    before = listing(outside)
    dest = tmp_path / "restored"
    with pytest.raises(bf.BackupRefused, match="not a folder"):
        bf.unpack("rsync", storage, "evil", str(dest), log=QUIET, privileged=privileged)
    assert listing(outside) == before
    assert (outside / "host-secret").read_text() == "host only\n"
    assert not dest.exists()   # the failed restore took back what it had written


def test_rsync_restore_refuses_unsafe_paths_and_unknown_entries(storage, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "payload").write_text("x")
    for i, (extra, message) in enumerate([({"p": "../up", "t": "l", "l": "x"}, "unsafe path"),
                                          ({"p": "/abs", "t": "d"}, "unsafe path"),
                                          ({"p": "odd", "t": "z"}, "unknown type"),
                                          ({"p": "sock", "t": "n", "k": stat.S_IFSOCK, "r": 0}, "unknown kind"),
                                          ({"p": "f", "t": "f", "o": "files/../../x", "h": "0"}, "unsafe path"),
                                          ({"p": "f", "t": "f", "o": "../x", "h": "0"}, "outside the backup"),
                                          ({"p": "lnk", "t": "l", "l": 5}, "malformed")]):
        craft_rsync(storage, f"evil{i}", str(src), [extra])
        with pytest.raises(bf.BackupRefused, match=message):
            bf.unpack("rsync", storage, f"evil{i}", str(tmp_path / f"dest{i}"), log=QUIET)
        assert not (tmp_path / f"dest{i}").exists()


# ---- finding 2: a hostile app swaps files while the rsync scan reads them -------------------------

def _swap_in(folder, name, kind, secret):
    """Replace folder/name, atomically (rename), by a symlink to a host file, a FIFO, a
    /dev/zero node or a regular file: what an app can do in its own data folder."""
    tmp = os.path.join(folder, f".swap-{kind}")
    if kind == "symlink":
        os.symlink(secret, tmp)
    elif kind == "fifo":
        os.mkfifo(tmp)
    elif kind == "zero":
        os.mknod(tmp, stat.S_IFCHR | 0o666, os.makedev(1, 5))
    else:
        with open(tmp, "w") as f:
            f.write("harmless\n")
    os.rename(tmp, os.path.join(folder, name))


@needs_root
@pytest.mark.parametrize("kind", ["symlink", "fifo", "zero", "regular"])
def test_rsync_scan_never_opens_what_is_swapped_in_after_the_stat(kind, tmp_path):
    secret = tmp_path / "host-secret"
    secret.write_text("HOST-ONLY SECRET\n")
    src = tmp_path / "app"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "zz").write_text("harmless\n")
    (src / "sub" / "zzz").write_text("kept\n")
    scan = Scan(str(src), QUIET)
    opened = {}
    try:
        for e in scan:
            if e["p"] == "sub/zz":
                _swap_in(str(src / "sub"), "zz", kind, str(secret))   # between the stat and the open
            if e["t"] == "f":
                opened[e["p"]] = scan.open_file(e)
    finally:
        scan.close()
    assert opened["sub/zz"] is None   # even a regular file: not the inode the scan saw
    fd = opened["sub/zzz"]
    assert b"".join(read_capped(fd, 5)) == b"kept\n"
    os.close(fd)


def test_rsync_upload_reads_no_more_than_the_scanned_size(tmp_path):
    path = tmp_path / "growing"
    path.write_bytes(b"a" * 10)
    fd = os.open(path, os.O_RDONLY)
    try:
        with open(path, "ab") as f:
            f.write(b"b" * (3 << 20))   # grows after the scan
        assert b"".join(read_capped(fd, 10, block=4)) == b"a" * 10
    finally:
        os.close(fd)


@needs_root
def test_rsync_backup_raced_by_a_hostile_app_never_stores_a_host_file_nor_hangs(storage, tmp_path):
    secret = tmp_path / "host-secret"
    secret.write_bytes(b"HOST-ONLY SECRET " * 64)
    os.chmod(secret, 0o600)
    src = tmp_path / "app"
    for i in range(300):
        (src / f"d{i % 6}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 6}" / f"f{i:03d}").write_bytes(os.urandom(2048))
    _swap_in(str(src), "zz", "regular", str(secret))
    stop = threading.Event()

    def racer():   # the loop of the review's app, in its own data folder only
        while not stop.is_set():
            for kind in ("symlink", "regular", "fifo", "regular", "zero", "regular"):
                _swap_in(str(src), "zz", kind, str(secret))
                time.sleep(0.0007)

    t = threading.Thread(target=racer, daemon=True)
    t.start()
    try:
        for n in range(20):
            done = {}
            packer = threading.Thread(target=lambda n=n, done=done: done.update(
                r=bf.pack("rsync", str(src), storage, f"b{n}", log=QUIET, concurrency=2)), daemon=True)
            packer.start()
            packer.join(timeout=60)
            assert not packer.is_alive(), "the backup hung on what the app swapped in"
            assert done["r"]["size"] < 2 << 20   # no endless /dev/zero
    finally:
        stop.set()
        t.join()
    for folder, _, files in os.walk(storage.root):
        for name in files:
            with open(os.path.join(folder, name), "rb") as f:
                assert b"HOST-ONLY" not in f.read(), name
    dest = tmp_path / "restored"
    bf.unpack("rsync", storage, "b19", str(dest), log=QUIET)
    zz = dest / "zz"
    assert not zz.exists() or zz.is_symlink() or stat.S_ISFIFO(zz.lstat().st_mode) or zz.read_text() == "harmless\n"


# ---- finding 3: encryption that the storage cannot take away ----------------------------------

def _tree(root):
    os.makedirs(root / "docs")
    (root / "docs" / "readme.txt").write_text("hello\n")
    (root / "data.bin").write_bytes(os.urandom(100_000))


@pytest.mark.parametrize("fmt", ["tgz", "zstd", "rsync"])
def test_unencrypted_backup_swapped_in_for_an_encrypted_one_is_refused(fmt, storage, tmp_path):
    src = tmp_path / "src"
    _tree(src)
    bf.pack(fmt, str(src), storage, "b", key="owner key", log=QUIET)
    # The attacker (write access to the storage, no key) replaces it with a plain backup of theirs.
    bf.remove(fmt, storage, "b")
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "injected").write_text("attacker data")
    bf.pack(fmt, str(evil), storage, "b", log=QUIET)
    dest = tmp_path / "dest"
    with pytest.raises(bf.BackupRefused, match="not encrypted in the storage"):
        bf.unpack(fmt, storage, "b", str(dest), key="owner key", log=QUIET, expect_encrypted=True)
    assert not dest.exists()
    with pytest.raises(bf.BackupRefused, match="not encrypted in the storage"):
        bf.verify(fmt, storage, "b", key="owner key", expect_encrypted=True)
    # And the other way round: a backup recorded as plain is not restored from an encrypted one.
    bf.remove(fmt, storage, "b")
    bf.pack(fmt, str(evil), storage, "b", key="some key", log=QUIET)
    with pytest.raises(bf.BackupRefused, match="is encrypted in the storage"):
        bf.unpack(fmt, storage, "b", str(dest), key="some key", log=QUIET, expect_encrypted=False)
    assert not dest.exists()


def _rewrite_list(storage, remote, change):
    path = storage.local_path(remote + bf.CHECKSUMS)
    with open(path) as f:
        rows = [json.loads(line) for line in f]
    change(rows)
    with open(path, "w") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))


def _downgrade(rows):
    rows[0]["version"] = 2
    del rows[0]["kdf"]
    rows[-1].pop("mac")


TAMPERING = {
    "summary": (lambda rows: rows[0].update(files=rows[0]["files"] + 1), "failed authentication"),
    "object line": (lambda rows: rows[1].__setitem__(2, "0" * 64), "failed authentication"),
    "extra line": (lambda rows: rows.insert(-1, ["/files/extra", 1, "0" * 64]), "failed authentication"),
    "mac removed": (lambda rows: rows[-1].pop("mac"), "failed authentication"),
    "downgraded to an unsigned list": (_downgrade, "not authenticated"),
}


@pytest.mark.parametrize("tampering", sorted(TAMPERING))
@pytest.mark.parametrize("fmt", ["tgz", "zstd", "rsync"])
def test_tampered_checksum_list_of_an_encrypted_backup_is_refused(fmt, tampering, storage, tmp_path):
    src = tmp_path / "src"
    _tree(src)
    bf.pack(fmt, str(src), storage, "b", key="owner key", log=QUIET)
    change, message = TAMPERING[tampering]
    _rewrite_list(storage, "b", change)
    dest = tmp_path / "dest"
    with pytest.raises(bf.BackupRefused, match=message):
        bf.unpack(fmt, storage, "b", str(dest), key="owner key", log=QUIET, expect_encrypted=True)
    assert not dest.exists()
    with pytest.raises(bf.BackupRefused, match=message):
        bf.verify(fmt, storage, "b", key="owner key")


@pytest.mark.parametrize("fmt", ["tgz", "zstd", "rsync"])
def test_encrypted_backup_restores_when_expected(fmt, storage, tmp_path):
    src = tmp_path / "src"
    _tree(src)
    bf.pack(fmt, str(src), storage, "b", key="owner key", log=QUIET)
    bf.verify(fmt, storage, "b", key="owner key", expect_encrypted=True)
    dest = tmp_path / "dest"
    bf.unpack(fmt, storage, "b", str(dest), key="owner key", log=QUIET, expect_encrypted=True)
    assert (dest / "docs" / "readme.txt").read_text() == "hello\n"
    assert (dest / "data.bin").read_bytes() == (src / "data.bin").read_bytes()


# ---- finding 7 (restore half): device nodes and setuid files planted in app data --------------

def _planted_app_data(root):
    root.mkdir()
    for name, mode in (("suid-root-shell", 0o4755), ("sgid-file", 0o2755), ("plain", 0o755)):
        (root / name).write_text("#!/bin/sh\n")
        os.chmod(root / name, mode)
    os.mknod(root / "disk", stat.S_IFBLK | 0o666, os.makedev(7, 0))
    os.mknod(root / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mkfifo(root / "fifo")
    os.chmod(root / "fifo", 0o620)
    (root / "shared").mkdir()
    os.chmod(root / "shared", 0o2775)   # a setgid folder: group inheritance, no privilege
    os.link(root / "suid-root-shell", root / "shared" / "hard-linked")


def _mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


@needs_root
@pytest.mark.parametrize("fmt", ["tgz", "zstd", "rsync"])
def test_device_node_and_setuid_file_in_app_data_are_not_restored_as_such(fmt, storage, tmp_path):
    src = tmp_path / "app-data"
    _planted_app_data(src)
    bf.pack(fmt, str(src), storage, "b", log=QUIET)
    dest = tmp_path / "restored"
    lines = []
    bf.unpack(fmt, storage, "b", str(dest), log=lines.append)
    assert not (dest / "disk").exists() and not (dest / "null").exists()
    assert any("device node" in line for line in lines), lines
    assert _mode(dest / "suid-root-shell") == 0o755 and _mode(dest / "sgid-file") == 0o755
    assert _mode(dest / "shared" / "hard-linked") == 0o755
    assert os.stat(dest / "suid-root-shell").st_ino == os.stat(dest / "shared" / "hard-linked").st_ino
    assert _mode(dest / "plain") == 0o755 and _mode(dest / "shared") == 0o2775
    assert stat.S_ISFIFO(os.lstat(dest / "fifo").st_mode) and _mode(dest / "fifo") == 0o620
    # A trusted restore (not app data) brings everything back as it was.
    trusted = tmp_path / "trusted"
    bf.unpack(fmt, storage, "b", str(trusted), log=QUIET, privileged=True)
    assert _mode(trusted / "suid-root-shell") == 0o4755 and _mode(trusted / "sgid-file") == 0o2755
    assert os.stat(trusted / "null").st_rdev == os.makedev(1, 3)
    assert stat.S_ISBLK(os.lstat(trusted / "disk").st_mode)
