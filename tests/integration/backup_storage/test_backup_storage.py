"""Backup storage providers against real storage: folders on this machine (including a full and a
read-only tmpfs mount made by the test) and a real local S3-compatible server (tests/s3server.py)."""
import os

import pytest

import backup_storage as bs
from core import errors
from support.harness import free_port, require, tmpfs
from support.s3server import S3Server


# ---- fixtures ----------------------------------------------------------------------------------



@pytest.fixture
def bucket(s3, request):
    name = "b" + request.node.name.lower().replace("_", "-").replace("[", "-").replace("]", "")[:40]
    return s3.make_bucket(name.rstrip("-"))


@pytest.fixture
def s3_storage(s3, bucket):
    return bs.open_storage(bs.validate_config(s3.config(bucket, prefix="some/prefix")))


@pytest.fixture
def fs_storage(tmp_path):
    return bs.open_storage(bs.validate_config(
        {"provider": "filesystem", "format": "tgz", "retentionSecs": 1,
         "backupFolder": str(tmp_path / "store")}))


def files_under(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


# ---- configuration -----------------------------------------------------------------------------

def test_validate_config_normalises_and_defaults():
    cfg = bs.validate_config({"provider": "filesystem", "format": "rsync", "retentionSecs": 3600,
                              "backupFolder": "/var/backups/../backups/", "bucket": "ignored", "key": ""})
    assert cfg == {"provider": "filesystem", "format": "rsync", "retentionSecs": 3600, "intervalSecs": 86400,
                   "syncConcurrency": bs.DEFAULT_CONCURRENCY, "key": None, "backupFolder": "/var/backups",
                   "noHardlinks": False, "externalDisk": False}
    s3 = bs.validate_config({"provider": "wasabi", "format": "tgz", "retentionSecs": -1, "bucket": "b1",
                             "prefix": "/a//b/", "accessKeyId": "AK", "secretAccessKey": "SK",
                             "region": "eu-central-1",
                             "schedulePattern": "00 00 23 * * *", "key": "secret"})
    assert s3["endpoint"] == "https://s3.eu-central-1.wasabisys.com" and s3["prefix"] == "a/b"
    assert s3["schedulePattern"] == "00 00 23 * * *" and "intervalSecs" not in s3
    assert s3["acceptSelfSignedCerts"] is False and s3["key"] == "secret"
    assert bs.validate_config({"provider": "noop", "format": "tgz", "retentionSecs": 1})["provider"] == "noop"
    default = bs.default_config("/srv/berth")
    assert default["backupFolder"] == "/srv/berth/backups" and default["format"] == "tgz"
    assert default["intervalSecs"] == 86400 and default["retentionSecs"] == 7 * 86400


@pytest.mark.parametrize("change, field", [
    ({"provider": "gcs"}, "provider"),
    ({"provider": None}, "provider"),
    ({"format": "zip"}, "format"),
    ({"retentionSecs": "7d"}, "retentionSecs"),
    ({"intervalSecs": 3600}, "intervalSecs"),
    ({"intervalSecs": True}, "intervalSecs"),
    ({"schedulePattern": "* * * * *"}, "schedulePattern"),
    ({"syncConcurrency": 0}, "syncConcurrency"),
    ({"backupFolder": "relative/path"}, "backupFolder"),
    ({"backupFolder": None}, "backupFolder"),
    ({"noHardlinks": "yes"}, "noHardlinks"),
    ({"provider": "minio", "bucket": "b1", "accessKeyId": "a", "secretAccessKey": "s"}, "endpoint"),
    ({"provider": "s3", "accessKeyId": "a", "secretAccessKey": "s"}, "bucket"),
    ({"provider": "s3", "bucket": "b1", "secretAccessKey": "s"}, "accessKeyId"),
    ({"provider": "minio", "bucket": "b1", "accessKeyId": "a", "secretAccessKey": "s",
      "endpoint": "ftp://x"}, "endpoint"),
    ({"key": 5}, "key"),
])
def test_validate_config_names_the_bad_field(change, field):
    cfg = {"provider": "filesystem", "format": "tgz", "retentionSecs": 60, "backupFolder": "/b"}
    cfg.update(change)
    cfg = {k: v for k, v in cfg.items() if v is not None}
    with pytest.raises(errors.BadRequest) as e:
        bs.validate_config(cfg)
    assert e.value.field == field and e.value.message.startswith(field + ": ")


def test_secrets_are_masked_and_kept():
    stored = {"provider": "s3", "key": "pw", "secretAccessKey": "SK", "accessKeyId": "AK"}
    shown = bs.masked(stored)
    assert shown["key"] == bs.MASK and shown["secretAccessKey"] == bs.MASK and shown["accessKeyId"] == "AK"
    assert bs.unmask(shown, stored) == stored
    assert bs.unmask({**shown, "key": "new"}, stored)["key"] == "new"


# ---- filesystem --------------------------------------------------------------------------------

def test_filesystem_objects(fs_storage):
    st = fs_storage
    st.probe()
    st.put_bytes("a/b/one", b"1")
    with st.writer("a/two") as w:
        w.write(b"2" * 1000)
    assert st.get_bytes("a/b/one") == b"1" and st.size("a/two") == 1000
    assert st.exists("a/two") and not st.exists("a/none")
    assert st.list("a") == ["a/b/one", "a/two"] and st.list("") == ["a/b/one", "a/two"]
    assert st.list("zz") == []
    assert st.local_path("a/two") == os.path.join(st.root, "a/two")
    # An exception inside the writer leaves neither the object nor a temporary file.
    with pytest.raises(RuntimeError):
        with st.writer("a/three") as w:
            w.write(b"partial")
            raise RuntimeError("stop")
    assert not st.exists("a/three") and files_under(st.root) == ["a/b/one", "a/two"]
    # copy: a hard link by default
    st.copy("a/two", "c/two")
    assert os.stat(st.local_path("c/two")).st_ino == os.stat(st.local_path("a/two")).st_ino
    st.remove("a/two")
    st.remove("a/two")   # missing is fine
    assert st.get_bytes("c/two") == b"2" * 1000
    st.remove_prefix("a")
    st.remove_prefix("a")
    assert st.list("") == ["c/two"] and not os.path.exists(os.path.join(st.root, "a"))
    with pytest.raises(ValueError):
        st.put_bytes("../escape", b"x")
    with pytest.raises(bs.StorageError, match="No such file or directory"):
        st.get_bytes("missing")


def test_filesystem_no_hardlinks_copies(tmp_path):
    st = bs.open_storage(bs.validate_config({"provider": "filesystem", "format": "rsync", "retentionSecs": 1,
                                             "backupFolder": str(tmp_path), "noHardlinks": True}))
    st.put_bytes("x", b"data")
    st.copy("x", "y/x")
    assert os.stat(st.local_path("y/x")).st_ino != os.stat(st.local_path("x")).st_ino
    assert st.get_bytes("y/x") == b"data"


def test_filesystem_probe_fails_with_the_os_message(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    bad = bs.open_storage(bs.validate_config({"provider": "filesystem", "format": "tgz", "retentionSecs": 1,
                                              "backupFolder": str(afile / "backups")}))
    with pytest.raises(bs.StorageError, match="Not a directory"):
        bad.probe()
    with tmpfs("size=1m,ro") as ro:
        st = bs.FilesystemStorage(ro)
        with pytest.raises(bs.StorageError, match="Read-only file system") as e:
            st.probe()
        assert e.value.status == 424
    # externalDisk: a folder on the root filesystem means the disk is not mounted.
    ext = bs.FilesystemStorage(str(tmp_path / "ext"), external_disk=True)
    with pytest.raises(bs.StorageError, match="not on a mounted external disk"):
        ext.probe()
    with tmpfs("size=1m") as disk:
        bs.FilesystemStorage(os.path.join(disk, "backups"), external_disk=True).probe()


def test_full_disk_fails_with_enospc_and_leaves_nothing():
    with tmpfs("size=2m") as disk:
        st = bs.FilesystemStorage(disk)
        st.put_bytes("small", b"ok")
        with pytest.raises(bs.StorageError, match="No space left on device") as e:
            with st.writer("big/object") as w:
                for _ in range(4):
                    w.write(os.urandom(1 << 20))
        assert e.value.status == 424
        assert files_under(disk) == ["small"] and st.list("") == ["small"]


# ---- S3 ----------------------------------------------------------------------------------------

def test_s3_objects(s3, s3_storage, bucket):
    st = s3_storage
    st.probe()
    st.put_bytes("a/b/one", b"1")
    big = os.urandom(9 << 20) + b"tail"    # more than one part: a multipart upload
    with st.writer("a/big") as w:
        for i in range(0, len(big), 1 << 20):
            w.write(big[i:i + (1 << 20)])
    assert st.get_bytes("a/big") == big and st.size("a/big") == len(big)
    assert st.exists("a/b/one") and not st.exists("a/none")
    assert st.list("a") == ["a/b/one", "a/big"] and st.list("") == ["a/b/one", "a/big"]
    keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(keys) == ["some/prefix/a/b/one", "some/prefix/a/big"]   # under the configured prefix
    assert st.local_path("a/big") is None
    # An exception inside the writer aborts the multipart upload: no object, no pending upload.
    with pytest.raises(RuntimeError):
        with st.writer("a/aborted") as w:
            w.write(os.urandom(9 << 20))
            raise RuntimeError("stop")
    assert not st.exists("a/aborted")
    assert not s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads")
    st.copy("a/big", "c/big")   # server-side
    assert st.get_bytes("c/big") == big
    st.remove("a/b/one")
    st.remove("a/b/one")
    st.remove_prefix("a")
    assert st.list("") == ["c/big"]
    with pytest.raises(bs.StorageError, match="NoSuchKey"):
        st.get_bytes("a/big")


def test_s3_probe_fails_with_the_servers_message(s3, bucket):
    def probe(**change):
        with pytest.raises(bs.StorageError) as e:
            bs.open_storage(bs.validate_config({**s3.config(bucket), **change})).probe()
        return str(e.value)

    assert "The specified bucket does not exist (NoSuchBucket)" in probe(bucket="no-such-bucket")
    assert "(InvalidAccessKeyId)" in probe(accessKeyId="AKIAWRONGWRONGWRONG")
    assert "(SignatureDoesNotMatch)" in probe(secretAccessKey="wrong-secret")
    closed = free_port()   # nothing listens there
    assert "Could not connect" in probe(endpoint=f"http://127.0.0.1:{closed}")
    bs.open_storage(bs.validate_config(s3.config(bucket))).probe()


def test_s3_self_signed_certificate_needs_accept_self_signed_certs():
    require("a local S3 server (pip packages moto[server] and boto3)", S3Server.available())
    server = S3Server(ssl=True).start()
    try:
        name = server.make_bucket("tls-bucket")
        with pytest.raises(bs.StorageError, match="certificate verify failed"):
            bs.open_storage(bs.validate_config(server.config(name))).probe()
        bs.open_storage(bs.validate_config(server.config(name, acceptSelfSignedCerts=True))).probe()
    finally:
        server.stop()


def test_every_s3_family_provider_talks_to_a_custom_endpoint(s3, bucket):
    for provider in bs.S3_PROVIDERS:
        st = bs.open_storage(bs.validate_config(s3.config(bucket, provider=provider, prefix=provider)))
        st.probe()
        st.put_bytes("x", provider.encode())
        assert st.get_bytes("x") == provider.encode()


# ---- noop --------------------------------------------------------------------------------------

def test_noop_keeps_nothing():
    st = bs.open_storage(bs.validate_config({"provider": "noop", "format": "tgz", "retentionSecs": 1}))
    st.probe()
    with st.writer("a") as w:
        w.write(b"discarded")
    st.put_bytes("b", b"x")
    assert not st.exists("a") and st.list("") == [] and st.local_path("a") is None
    st.copy("a", "b")
    st.remove("a")
    st.remove_prefix("a")
    for read in (lambda: st.get_bytes("a"), lambda: st.size("a"), lambda: st.reader("a").__enter__()):
        with pytest.raises(bs.StorageError, match="noop storage keeps nothing"):
            read()
