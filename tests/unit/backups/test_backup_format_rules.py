"""Pure rules of the backup formats: what a restore may create, which paths an index may hold,
and the authenticated checksum list (written to and read from a folder in tmp)."""
import json
import stat

import pytest

import backup_storage as bs
from backups.formats import dirfds
from backups.formats.checksums import BackupRefused, ChecksumList, ChecksumWriter, read_checksums
from backups.formats.encryption import Keyring, WrongKey

KEYRING = Keyring("list key")


@pytest.mark.parametrize("path", ["", "/etc/passwd", "a/../b", "..", "a//b", "./a", "a/.", "a\0b"])
def test_unsafe_index_paths_are_refused(path):
    with pytest.raises(BackupRefused, match="unsafe path"):
        dirfds.safe_rel(path)


def test_safe_index_paths_pass():
    for path in ("a", "a/b/c", "name with space", "..hidden", "x..y"):
        assert dirfds.safe_rel(path) == path


def test_setuid_and_setgid_are_cleared_on_files_unless_privileged():
    assert dirfds.restored_mode(stat.S_IFREG, 0o4755, False) == 0o755
    assert dirfds.restored_mode(stat.S_IFREG, 0o6755, False) == 0o755
    assert dirfds.restored_mode(stat.S_IFREG, 0o1777, False) == 0o1777   # sticky bit is no privilege
    assert dirfds.restored_mode(stat.S_IFREG, 0o4755, True) == 0o4755
    assert dirfds.restored_mode(stat.S_IFDIR, 0o2775, False) == 0o2775   # folders: group inheritance
    assert dirfds.restored_mode(stat.S_IFREG, 0o170755, True) == 0o755   # type bits never get through


def test_only_fifos_are_special_files_an_app_restore_creates():
    assert dirfds.node_allowed(stat.S_IFIFO, False)
    assert not dirfds.node_allowed(stat.S_IFCHR, False) and not dirfds.node_allowed(stat.S_IFBLK, False)
    assert dirfds.node_allowed(stat.S_IFCHR, True) and dirfds.node_allowed(stat.S_IFBLK, True)
    assert not dirfds.node_allowed(stat.S_IFSOCK, True) and not dirfds.node_allowed(stat.S_IFREG, True)


def _write_list(storage, keyring):
    w = ChecksumWriter("tgz", keyring)
    w.add("/a", 3, "0" * 64)
    w.add("/b", 5, "1" * 64)
    w.commit(storage, "r", files=2)
    w.close()


def test_encrypted_checksum_list_round_trip(tmp_path):
    storage = bs.FilesystemStorage(str(tmp_path))
    _write_list(storage, KEYRING)
    assert read_checksums(storage, "r")["encrypted"] is True
    with ChecksumList(storage, "r", "tgz") as cl:
        assert cl.open("list key", expect_encrypted=True) is not None
        assert list(cl.entries()) == [("/a", 3, "0" * 64), ("/b", 5, "1" * 64)]
        with pytest.raises(WrongKey):
            cl.open("another key")
        with pytest.raises(WrongKey, match="key is needed"):
            cl.open(None)
        with pytest.raises(BackupRefused, match="is encrypted in the storage"):
            cl.check_expected(False)


def test_plain_checksum_list_has_no_mac_and_is_refused_where_encryption_is_expected(tmp_path):
    storage = bs.FilesystemStorage(str(tmp_path))
    _write_list(storage, None)
    text = (tmp_path / "r.checksums.json").read_text()
    assert "mac" not in text and "kdf" not in text
    with ChecksumList(storage, "r", "tgz") as cl:
        assert cl.open("any key") is None   # not expected either way: as before
        with pytest.raises(BackupRefused, match="not encrypted in the storage"):
            cl.open("any key", expect_encrypted=True)


def test_one_changed_byte_in_an_encrypted_list_is_refused(tmp_path):
    storage = bs.FilesystemStorage(str(tmp_path))
    _write_list(storage, KEYRING)
    path = tmp_path / "r.checksums.json"
    rows = path.read_text().splitlines()
    rows[1] = json.dumps(["/a", 4, "0" * 64])
    path.write_text("\n".join(rows) + "\n")
    with ChecksumList(storage, "r", "tgz") as cl, pytest.raises(BackupRefused, match="failed authentication"):
        cl.open("list key")


def test_missing_or_foreign_list(tmp_path):
    storage = bs.FilesystemStorage(str(tmp_path))
    with pytest.raises(bs.StorageError, match="incomplete or missing"):
        ChecksumList(storage, "r", "tgz")
    _write_list(storage, None)
    with pytest.raises(bs.StorageError, match="a tgz backup, not rsync"):
        ChecksumList(storage, "r", "rsync")
