"""Which host folders may become a volume (volumes.paths): system folders, their parents and
everything inside them are refused; paths must be absolute and normalised; symlinks lead nowhere."""
import os

import pytest

from core.errors import BadRequest
from volumes import paths

DATA = "/srv/berth-data"


@pytest.mark.parametrize("folder", ["/", "/etc", "/proc", "/sys", "/dev", "/boot", "/var/lib/docker", DATA,
                                    "/run", "/var/run", "/usr", "/bin", "/sbin", "/lib", "/root"])
def test_every_system_folder_is_refused(folder):
    assert paths.refusal(folder, DATA) is not None


@pytest.mark.parametrize("parent", ["/var", "/var/lib", "/srv"])
def test_parents_of_system_folders_are_refused(parent):
    # /var holds /var/lib/docker, /srv holds the data dir: mounting them would hand those out
    assert "contains the system folder" in paths.refusal(parent, DATA)


@pytest.mark.parametrize("inside", ["/proc/1/root", "/sys/kernel", "/dev/shm", "/etc/ssl", "/boot/grub",
                                    "/var/lib/docker/volumes", f"{DATA}/apps", f"{DATA}/apps/x/data",
                                    "/run/docker", "/root/.ssh", "/usr/local/bin"])
def test_anything_inside_a_system_folder_is_refused(inside):
    assert "is inside the system folder" in paths.refusal(inside, DATA)


@pytest.mark.parametrize("fine", ["/mnt/media", "/srv/files", "/opt/shared", "/home/alice/photos", "/var/lib/mydata",
                                  "/media/usb", "/data", "/etcetera", "/devices", "/variable"])
def test_ordinary_folders_are_allowed(fine):
    # /etcetera is not inside /etc: the comparison is by path component, not by prefix
    assert paths.refusal(fine, DATA) is None


def test_the_data_dir_of_another_layout_is_refused_with_its_parents():
    assert paths.refusal("/tmp/x", "/tmp/x/y/data") is not None
    assert paths.refusal("/tmp/x/y/data/berth.db", "/tmp/x/y/data") is not None
    assert paths.refusal("/tmp/x/other", "/tmp/x/y/data") is None


@pytest.mark.parametrize("given, suggested", [("/mnt/a/../b", "/mnt/b"), ("/mnt//a", "/mnt/a"),
                                              ("/mnt/./a", "/mnt/a"), ("//mnt/a", "/mnt/a")])
def test_paths_that_are_not_normalised_are_refused(given, suggested):
    with pytest.raises(BadRequest) as err:
        paths.normalised(given)
    assert suggested in err.value.message


def test_a_trailing_slash_is_dropped():
    assert paths.normalised("/mnt/a/") == "/mnt/a"
    assert paths.normalised("/") == "/"


@pytest.mark.parametrize("bad", ["mnt/a", "", None, 5, "./a", "/mnt/a\nb", "/mnt/\0"])
def test_relative_empty_or_odd_paths_are_refused(bad):
    with pytest.raises(BadRequest):
        paths.normalised(bad)


def test_traversal_to_etc_is_refused():
    with pytest.raises(BadRequest, match="normalised"):
        paths.check_folder("/mnt/../etc", DATA)
    with pytest.raises(BadRequest, match="system folder"):
        paths.check_folder("/etc/", DATA)


def test_an_existing_folder_is_accepted(tmp_path):
    folder = tmp_path / "share"
    folder.mkdir()
    assert paths.check_folder(str(folder) + "/", DATA) == str(folder)


def test_a_missing_folder_or_a_file_is_refused(tmp_path):
    with pytest.raises(BadRequest, match="does not exist"):
        paths.check_folder(str(tmp_path / "missing"), DATA)
    (tmp_path / "file").write_text("x")
    with pytest.raises(BadRequest, match="not a directory"):
        paths.check_folder(str(tmp_path / "file"), DATA)


def test_volume_through_a_symlink_to_etc_is_refused(tmp_path):
    link = tmp_path / "innocent"
    link.symlink_to("/etc")
    with pytest.raises(BadRequest, match="symbolic link"):
        paths.check_folder(str(link), DATA)


def test_volume_under_a_symlinked_parent_leading_into_etc_is_refused(tmp_path):
    (tmp_path / "mnt").symlink_to("/etc")
    with pytest.raises(BadRequest, match="leads to /etc/ssl"):
        paths.check_folder(str(tmp_path / "mnt" / "ssl"), DATA)


def test_volume_under_a_symlink_into_the_data_dir_is_refused(tmp_path):
    data = tmp_path / "data"
    (data / "apps").mkdir(parents=True)
    (tmp_path / "door").symlink_to(data)
    with pytest.raises(BadRequest, match="leads to"):
        paths.check_folder(str(tmp_path / "door" / "apps"), str(data))


def test_mount_points_are_read_from_mountinfo_with_escapes():
    text = ("22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
            "90 22 0:50 / /mnt/my\\040disk rw,nosuid - ext4 /dev/sdb1 rw\n")
    assert paths.mount_points(text) == {"/", "/mnt/my disk"}
    assert paths.is_mount_point("/mnt/my disk/", text)
    assert not paths.is_mount_point("/mnt", text)


def test_the_real_mountinfo_knows_the_root():
    assert paths.is_mount_point("/")
    assert os.path.exists(paths.MOUNTINFO)
