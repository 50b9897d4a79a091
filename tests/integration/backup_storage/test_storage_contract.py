"""One contract for every backup storage: the object API (backup_storage.base.Storage) behaves the
same on a folder of this machine (with and without hard links) and on a real S3-compatible server
(tests/support/s3server.py). The noop provider is held to the part of the contract that applies
to a storage that keeps nothing. What only one provider does is in test_backup_storage.py."""
import itertools
import os

import pytest

import backup_storage as bs

KEEPING = ["filesystem", "filesystem-copies", "s3"]
_buckets = itertools.count()


class Backend:
    """A storage under test plus a look at its raw contents (files in the folder / keys in the
    bucket), to check that nothing the API does not show is left behind."""

    def __init__(self, storage, raw, pending_uploads=lambda: []):
        self.storage, self.raw, self.pending_uploads = storage, raw, pending_uploads


def _filesystem(tmp_path, **extra):
    root = tmp_path / "store"
    root.mkdir()
    storage = bs.open_storage(bs.validate_config({"provider": "filesystem", "format": "rsync", "retentionSecs": 1,
                                                  "backupFolder": str(root), **extra}))
    return Backend(storage, lambda: sorted(os.path.relpath(os.path.join(d, f), root)
                                           for d, _, files in os.walk(root) for f in files))


def _s3(s3):
    bucket = s3.make_bucket(f"contract-{next(_buckets)}")
    storage = bs.open_storage(bs.validate_config(s3.config(bucket, prefix="some/prefix")))
    client = s3.client()

    def raw():
        return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", ()))
    return Backend(storage, raw, lambda: client.list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def _backend(kind, request, tmp_path):
    if kind == "s3":
        return _s3(request.getfixturevalue("s3"))
    if kind == "noop":
        storage = bs.open_storage(bs.validate_config({"provider": "noop", "format": "tgz", "retentionSecs": 1}))
        return Backend(storage, lambda: [])
    return _filesystem(tmp_path, noHardlinks=kind == "filesystem-copies")


@pytest.fixture(params=KEEPING)
def backend(request, tmp_path):
    return _backend(request.param, request, tmp_path)


@pytest.fixture(params=KEEPING + ["noop"])
def any_storage(request, tmp_path):
    return _backend(request.param, request, tmp_path).storage


def raw_names(backend):
    """Raw names relative to the storage root (the S3 keys carry the configured prefix)."""
    base = getattr(backend.storage, "base", "")
    names = backend.raw()
    assert all(n.startswith(base) for n in names), names    # nothing outside the prefix
    return [n[len(base):] for n in names]


# ---- every provider ----------------------------------------------------------------------------

def test_is_a_storage_and_probes_clean(any_storage):
    assert isinstance(any_storage, bs.Storage) and any_storage.provider in bs.PROVIDERS
    assert any_storage.probe() is None
    assert any_storage.list("") == []


@pytest.mark.parametrize("bad", ["", "/", "..", "../x", "a/../../x", "a/./b", "x\0y"])
def test_paths_that_leave_the_root_are_refused(any_storage, bad):
    st = any_storage
    for call in (lambda: st.put_bytes(bad, b"x"), lambda: st.writer(bad).__enter__(), lambda: st.exists(bad),
                 lambda: st.remove(bad), lambda: st.remove_prefix(bad), lambda: st.copy("ok", bad)):
        with pytest.raises(ValueError):
            call()


# ---- providers that keep what they are given -----------------------------------------------------

def test_probe_leaves_nothing_behind(backend):
    backend.storage.probe()
    backend.storage.probe()
    assert raw_names(backend) == [] and backend.storage.list("") == []


def test_written_objects_read_back(backend):
    st = backend.storage
    big = os.urandom(9 << 20) + b"tail"     # more than one S3 part: a multipart upload
    with st.writer("a/big") as w:
        for i in range(0, len(big), 1 << 20):
            w.write(big[i:i + (1 << 20)])
    st.put_bytes("a/b/one", b"1")
    st.put_bytes("empty", b"")
    assert st.get_bytes("a/big") == big and st.size("a/big") == len(big)
    assert st.get_bytes("a/b/one") == b"1" and st.get_bytes("empty") == b"" and st.size("empty") == 0
    with st.reader("a/big") as r:      # streams in pieces of the size asked for
        assert r.read(10) == big[:10] and r.read(5) == big[10:15]
    assert st.exists("a/big") and st.exists("empty")
    assert not st.exists("a/none") and not st.exists("a")       # a folder is not an object
    assert raw_names(backend) == ["a/b/one", "a/big", "empty"]


def test_writing_again_replaces_the_object(backend):
    st = backend.storage
    st.put_bytes("x/y", b"first version")
    with st.writer("x/y", durable=False) as w:
        w.write(b"second")
    st.sync()
    assert st.get_bytes("x/y") == b"second" and st.size("x/y") == 6


def test_create_never_replaces_an_object(backend):
    """create() is how the rsync object store writes: the first complete object stays, a second
    create of the same path writes nothing and leaves no temporary object behind."""
    storage = backend.storage
    assert storage.create("objects/ab/cd", b"first") is True
    assert storage.create("objects/ab/cd", b"second, longer") is False
    storage.sync()
    assert storage.get_bytes("objects/ab/cd") == b"first"
    assert storage.list("objects") == ["objects/ab/cd"]
    assert len(backend.raw()) == 1 and not backend.pending_uploads()


def test_a_failed_write_leaves_nothing(backend):
    st = backend.storage
    st.put_bytes("keep", b"old")
    for path, size in (("a/small", 10), ("a/large", 9 << 20), ("keep", 10)):
        with pytest.raises(RuntimeError):
            with st.writer(path) as w:
                w.write(os.urandom(size))
                raise RuntimeError("stop")
    assert st.get_bytes("keep") == b"old" and not st.exists("a/small") and not st.exists("a/large")
    assert raw_names(backend) == ["keep"] and backend.pending_uploads() == []


def test_list_is_sorted_and_limited_to_the_folder(backend):
    st = backend.storage
    for path in ("b/2", "a/x/1", "a/0", "ab/1", "c"):
        st.put_bytes(path, b".")
    assert st.list("") == ["a/0", "a/x/1", "ab/1", "b/2", "c"]
    assert st.list("a") == ["a/0", "a/x/1"] == st.list("a/") == st.list("/a/")
    assert st.list("a/x") == ["a/x/1"] and st.list("zz") == [] and st.list("c/d") == []


def test_copy_makes_an_independent_object(backend):
    st = backend.storage
    st.put_bytes("src/obj", b"payload")
    st.put_bytes("dst/obj", b"to be replaced")
    st.copy("src/obj", "dst/obj")
    st.copy("src/obj", "other/deep/obj")
    assert st.get_bytes("dst/obj") == b"payload" == st.get_bytes("other/deep/obj")
    st.remove("src/obj")
    assert st.get_bytes("dst/obj") == b"payload" and not st.exists("src/obj")
    with pytest.raises(bs.StorageError):
        st.copy("src/obj", "again")


def test_remove_and_remove_prefix(backend):
    st = backend.storage
    for path in ("a/b/one", "a/two", "ab/three", "c/four"):
        st.put_bytes(path, b".")
    st.remove("a/two")
    st.remove("a/two")          # missing is fine
    st.remove("never/there")
    st.remove_prefix("a")
    st.remove_prefix("a")
    st.remove_prefix("nothing/here")
    assert st.list("") == ["ab/three", "c/four"] and raw_names(backend) == ["ab/three", "c/four"]


def test_missing_objects_are_storage_errors(backend):
    st = backend.storage
    for call in (lambda: st.get_bytes("missing"), lambda: st.size("missing"),
                 lambda: st.reader("missing").__enter__()):
        with pytest.raises(bs.StorageError) as e:
            call()
        assert e.value.status == 424 and "missing" in e.value.message


# ---- noop ----------------------------------------------------------------------------------------

def test_noop_keeps_nothing():
    st = bs.open_storage(bs.validate_config({"provider": "noop", "format": "tgz", "retentionSecs": 1}))
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
