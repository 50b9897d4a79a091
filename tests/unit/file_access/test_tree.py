"""file_access.tree: every operation stays inside the root, whatever symlinks are planted in it."""
import io
import os
import tarfile

import pytest

from core.errors import BadRequest, Conflict, Forbidden, NotFound
from file_access import tree


@pytest.fixture
def root(tmp_path):
    """A root folder with a file, a sub folder and a planted link to a secret outside."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host secret")
    data = tmp_path / "data"
    (data / "docs").mkdir(parents=True)
    (data / "docs" / "a.txt").write_text("hello")
    os.symlink(str(outside), data / "evil")
    os.symlink(str(outside / "secret"), data / "evil-file")
    return str(data)


def _tar(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for info, content in members:
            t.addfile(info, io.BytesIO(content) if content is not None else None)
    buf.seek(0)
    return buf


def _member(name, content=None, kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = len(content) if content is not None else 0
    return info, content


def test_list_dir_shows_links_as_links(root):
    entries = {e["name"]: e for e in tree.list_dir(root, "")}
    assert entries["docs"]["type"] == "directory"
    assert entries["evil"]["type"] == "symlink" and entries["evil"]["target"].endswith("outside")
    assert set(entries["docs"]) >= {"name", "type", "size", "mode", "mtime"}
    [a] = tree.list_dir(root, "docs")
    assert (a["name"], a["type"], a["size"]) == ("a.txt", "file", 5) and a["mtime"].endswith("Z")


@pytest.mark.parametrize("call", [
    lambda r: tree.list_dir(r, "evil"),
    lambda r: tree.open_file(r, "evil/secret"),
    lambda r: tree.open_file(r, "evil-file"),
    lambda r: tree.write_file(r, "evil/new", io.BytesIO(b"x"), 10),
    lambda r: tree.make_dir(r, "evil/sub"),
    lambda r: tree.delete(r, "evil/secret", False),
    lambda r: tree.rename(r, "evil/secret", "stolen"),
    lambda r: list(tree.tar_stream(r, "evil/secret")),
    lambda r: tree.untar(r, "evil", _tar([_member("x", b"x")]), 10),
])
def test_planted_symlink_to_outside_is_never_followed(root, call):
    outside = os.path.join(os.path.dirname(root), "outside")
    with pytest.raises((Forbidden, NotFound)):
        call(root)
    assert sorted(os.listdir(outside)) == ["secret"]
    assert open(os.path.join(outside, "secret")).read() == "host secret"


def test_dot_dot_is_refused(root):
    with pytest.raises(BadRequest):
        tree.open_file(root, "docs/../../outside/secret")


def test_write_replaces_a_planted_link_instead_of_writing_through_it(root):
    assert tree.write_file(root, "evil-file", io.BytesIO(b"new"), 10) == 3
    assert not os.path.islink(os.path.join(root, "evil-file"))
    assert open(os.path.join(os.path.dirname(root), "outside", "secret")).read() == "host secret"


def test_write_is_size_limited_and_leaves_nothing(root):
    with pytest.raises(BadRequest):
        tree.write_file(root, "docs/big", io.BytesIO(b"x" * 100), 50)
    assert sorted(os.listdir(os.path.join(root, "docs"))) == ["a.txt"]


def test_file_round_trip_and_parents_created(root):
    tree.write_file(root, "new/deep/b.bin", io.BytesIO(bytes(range(256)) * 10), 10_000)
    f, size = tree.open_file(root, "new/deep/b.bin")
    with f:
        assert size == 2560 and f.read() == bytes(range(256)) * 10


def test_make_dir_rename_delete(root):
    tree.make_dir(root, "x/y")
    with pytest.raises(Conflict):
        tree.make_dir(root, "x/y")
    tree.rename(root, "x", "z")
    assert tree.entry(root, "z/y")["type"] == "directory"
    tree.write_file(root, "z/y/f", io.BytesIO(b"1"), 10)
    with pytest.raises(BadRequest):
        tree.delete(root, "z", recursive=False)
    tree.delete(root, "z", recursive=True)
    with pytest.raises(NotFound):
        tree.entry(root, "z")
    tree.delete(root, "evil", recursive=True)  # removes the link itself
    assert os.path.isdir(os.path.join(os.path.dirname(root), "outside"))
    with pytest.raises(Forbidden):
        tree.delete(root, "", recursive=True)


def test_tar_round_trip_keeps_bytes_and_links(root, tmp_path):
    os.symlink("a.txt", os.path.join(root, "docs", "alias"))
    data = b"".join(tree.tar_stream(root, "docs"))
    names = tarfile.open(fileobj=io.BytesIO(data)).getnames()
    assert sorted(names) == [".", "./a.txt", "./alias"]
    target = tmp_path / "copy"
    target.mkdir()
    assert tree.untar(str(target), "restored", io.BytesIO(data), 100) == 5
    assert (target / "restored" / "a.txt").read_text() == "hello"
    assert os.readlink(target / "restored" / "alias") == "a.txt"
    [single] = tarfile.open(fileobj=io.BytesIO(b"".join(tree.tar_stream(root, "docs/a.txt")))).getnames()
    assert single == "a.txt"


@pytest.mark.parametrize("member", [
    _member("../escape", b"x"),
    _member("/abs", b"x"),
    _member("link", kind=tarfile.SYMTYPE, linkname="/etc"),
    _member("sub/link", kind=tarfile.SYMTYPE, linkname="../../etc"),
    _member("hard", kind=tarfile.LNKTYPE, linkname="../outside/secret"),
    _member("dev", kind=tarfile.CHRTYPE),
    _member("fifo", kind=tarfile.FIFOTYPE),
])
def test_untar_refuses_members_leaving_the_root(root, member):
    with pytest.raises((BadRequest, Forbidden, NotFound)):
        tree.untar(root, "in", _tar([member]), 1000)
    assert not os.path.exists(os.path.join(os.path.dirname(root), "escape"))
    assert sorted(os.listdir(os.path.join(os.path.dirname(root), "outside"))) == ["secret"]


def test_untar_through_planted_symlink_writes_nothing_outside(root):
    with pytest.raises((Forbidden, BadRequest)):
        tree.untar(root, "", _tar([_member("evil/planted", b"x")]), 100)
    assert sorted(os.listdir(os.path.join(os.path.dirname(root), "outside"))) == ["secret"]


def test_untar_is_size_limited(root):
    with pytest.raises(BadRequest):
        tree.untar(root, "in", _tar([_member("a", b"x" * 60), _member("b", b"y" * 60)]), 100)


def test_copy_file_and_folder(root):
    tree.copy(root, "docs/a.txt", "docs/b.txt", 100)
    tree.copy(root, "docs", "docs2", 100)
    assert tree.open_file(root, "docs2/b.txt")[0].read() == b"hello"
    with pytest.raises(Conflict):
        tree.copy(root, "docs", "docs2", 100)
    with pytest.raises(BadRequest):
        tree.copy(root, "docs", "docs/inner", 100)


def test_fifo_is_not_opened(root):
    os.mkfifo(os.path.join(root, "pipe"))
    with pytest.raises(Forbidden):
        tree.open_file(root, "pipe")


def test_chown_changes_entries_never_link_targets(root):
    outside_secret = os.path.join(os.path.dirname(root), "outside", "secret")
    before = os.stat(outside_secret).st_uid
    tree.chown(root, "", 1234, 1234, recursive=True)
    assert os.stat(os.path.join(root, "docs", "a.txt")).st_uid == 1234
    assert os.lstat(os.path.join(root, "evil")).st_uid == 1234
    assert os.stat(outside_secret).st_uid == before


def test_new_folders_are_enterable_by_the_app_whatever_the_umask(root):
    old = os.umask(0o077)
    try:
        tree.make_dir(root, "m/n")
        tree.write_file(root, "w/x/f", io.BytesIO(b"1"), 10)
        tree.untar(root, "t", _tar([_member("d/f", b"1")]), 10)
    finally:
        os.umask(old)
    for rel in ("m", "m/n", "w/x", "t", "t/d"):
        assert os.stat(os.path.join(root, rel)).st_mode & 0o777 == 0o755, rel
    assert os.stat(os.path.join(root, "w/x/f")).st_mode & 0o777 == 0o644
