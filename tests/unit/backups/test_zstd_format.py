"""The zstd backup format on a real folder storage: what comes back is exactly what went in
(modes, owners, mtimes, links, empty and large sparse-ish files), encrypted or not; the stored
object is a standard .tar.zst; and a crafted archive cannot write outside the restore target."""
import hashlib
import io
import os
import stat
import tarfile

import pytest
import zstandard

import backup_storage as bs
from backups import formats as bf
from backups.formats.checksums import ChecksumWriter
from backups.formats.encryption import MAGIC
from support.data_tree import populate, snapshot

QUIET = lambda message: None  # noqa: E731
ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="owners and device nodes need root")


@pytest.fixture
def storage(tmp_path):
    return bs.FilesystemStorage(str(tmp_path / "store"))


def _tree(root):
    populate(str(root))
    (root / "empty-dir").mkdir()
    os.link(root / "docs" / "readme.txt", root / "hard-link.txt")
    os.mkfifo(root / "fifo")
    # Large and sparse-ish: holes, random blocks, long runs of text.
    with open(root / "big.img", "wb") as f:
        for i in range(24):
            f.seek(i * (1 << 20))
            f.write(os.urandom(64 << 10) if i % 3 else b"log line\n" * 20000)
        f.truncate(40 << 20)
    return root


@pytest.mark.parametrize("key", [None, "zstd backup key"], ids=["plain", "encrypted"])
def test_round_trip_is_exact(key, storage, tmp_path):
    src = _tree(tmp_path / "src")
    packed = bf.pack("zstd", str(src), storage, "app/b1", key=key, log=QUIET)
    assert packed["format"] == "zstd" and packed["encrypted"] == bool(key)
    assert packed["archive"] == "app/b1" + (".tar.zst.enc" if key else ".tar.zst")
    assert packed["size"] < packed["tarBytes"] / 2   # the holes and text compress
    assert bf.read_checksums(storage, "app/b1")["format"] == "zstd"
    assert bf.verify("zstd", storage, "app/b1", key=key, expect_encrypted=bool(key))["objects"] == 1

    dest = tmp_path / "dest"
    restored = bf.unpack("zstd", storage, "app/b1", str(dest), key=key, log=QUIET, expect_encrypted=bool(key))
    assert restored["format"] == "zstd"
    # (snapshot would open the FIFO and wait for a writer: it is checked on its own below)
    assert snapshot(str(dest), skip=("fifo",), with_root=True) == snapshot(str(src), skip=("fifo",), with_root=True)
    assert os.stat(dest / "hard-link.txt").st_ino == os.stat(dest / "docs" / "readme.txt").st_ino
    assert stat.S_ISFIFO(os.lstat(dest / "fifo").st_mode)
    assert os.readlink(dest / "latest") == "docs/readme.txt"
    if ROOT:
        assert os.stat(dest / "docs" / "readme.txt").st_uid == 1000

    bf.remove("zstd", storage, "app/b1")
    assert not storage.exists(packed["archive"]) and bf.read_checksums(storage, "app/b1") is None


def test_stored_object_is_a_standard_tar_zst(storage, tmp_path):
    src = _tree(tmp_path / "src")
    bf.pack("zstd", str(src), storage, "b", log=QUIET)
    raw = b"".join(bf.download_stream("zstd", storage, "b"))
    with open(storage.local_path("b.tar.zst"), "rb") as f:
        assert f.read() == raw
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw), read_across_frames=True)
    with tarfile.open(fileobj=reader, mode="r|") as tar:
        names = {m.name for m in tar}
    assert {"./docs/readme.txt", "./big.img", "./empty", "./latest"} <= names


def test_encrypted_object_is_sealed_and_needs_the_key(storage, tmp_path):
    src = _tree(tmp_path / "src")
    bf.pack("zstd", str(src), storage, "b", key="right key", log=QUIET)
    assert not storage.exists("b.tar.zst")
    with open(storage.local_path("b.tar.zst.enc"), "rb") as f:
        assert f.read(len(MAGIC)) == MAGIC
    dest = tmp_path / "dest"
    for key in ("wrong key", None):
        with pytest.raises(bf.WrongKey):
            bf.unpack("zstd", storage, "b", str(dest), key=key, log=QUIET)
        assert not dest.exists()
    # Recorded as encrypted, but a plain one was put in its place: refused before anything is written.
    bf.remove("zstd", storage, "b")
    bf.pack("zstd", str(src), storage, "b", log=QUIET)
    with pytest.raises(bf.BackupRefused):
        bf.unpack("zstd", storage, "b", str(dest), key="right key", log=QUIET, expect_encrypted=True)
    assert not dest.exists()


def test_a_modified_archive_is_refused_and_leaves_nothing(storage, tmp_path):
    src = _tree(tmp_path / "src")
    bf.pack("zstd", str(src), storage, "b", log=QUIET)
    path = storage.local_path("b.tar.zst")
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    dest = tmp_path / "dest"
    with pytest.raises(bs.StorageError):
        bf.unpack("zstd", storage, "b", str(dest), log=QUIET)
    assert not dest.exists()


def _store_crafted(storage, remote, members):
    """A zstd backup whose archive holds `members` [(TarInfo, bytes | None)], with a valid
    checksum list: what someone with write access to an unencrypted storage can make."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    compressed = zstandard.ZstdCompressor(level=1).compress(buf.getvalue())
    with storage.writer(remote + ".tar.zst") as out:
        out.write(compressed)
    sums = ChecksumWriter("zstd", None)
    try:
        sums.add(".tar.zst", len(compressed), hashlib.sha256(compressed).hexdigest())
        sums.commit(storage, remote, files=len(members))
    finally:
        sums.close()


def _info(name, kind=tarfile.REGTYPE, **fields):
    info = tarfile.TarInfo(name)
    info.type, info.mode = kind, 0o644
    for k, v in fields.items():
        setattr(info, k, v)
    return info


def test_zstd_restore_of_a_crafted_archive_writes_nothing_outside(storage, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    _store_crafted(storage, "evil", [
        (_info("./ok.txt"), b"fine\n"),
        (_info("../escaped.txt"), b"escaped\n"),
        (_info(str(outside / "absolute.txt")), b"absolute\n"),
        (_info("./out", tarfile.SYMTYPE, linkname=str(outside)), None),
        (_info("./out/through-link.txt"), b"through the link\n"),
        (_info("./hard", tarfile.LNKTYPE, linkname="../../etc/passwd"), None),
    ])
    dest = tmp_path / "dest"
    with pytest.raises(bs.StorageError, match="tar failed"):
        bf.unpack("zstd", storage, "evil", str(dest), log=QUIET)
    assert os.listdir(outside) == []
    assert not (tmp_path / "escaped.txt").exists()
    assert not dest.exists()


@needs_root
def test_device_node_in_a_crafted_app_archive_is_not_created(storage, tmp_path):
    _store_crafted(storage, "dev", [
        (_info("./disk", tarfile.BLKTYPE, devmajor=7, devminor=0, mode=0o666), None),
        (_info("./suid", mode=0o4755), b"#!/bin/sh\n"),
    ])
    dest = tmp_path / "dest"
    bf.unpack("zstd", storage, "dev", str(dest), log=QUIET)
    assert not (dest / "disk").exists()
    assert stat.S_IMODE(os.lstat(dest / "suid").st_mode) == 0o755


def test_backup_config_accepts_zstd_and_keeps_tgz_the_default(tmp_path):
    assert bs.validate_config({"provider": "noop", "format": "zstd", "retentionSecs": 86400})["format"] == "zstd"
    assert bs.default_config(str(tmp_path))["format"] == "tgz"
    with pytest.raises(Exception, match="tgz, zstd or rsync"):
        bs.validate_config({"provider": "noop", "format": "xz", "retentionSecs": 86400})
