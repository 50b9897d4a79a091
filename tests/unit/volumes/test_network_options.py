"""Mount options of the network volume types (volumes.network): checked field by field, secrets
masked and kept when sent back masked, never on a command line."""
import os
import stat

import pytest

from core.errors import BadRequest
from core.masking import MASK
from volumes import network

CIFS = {"host": "nas.example.test", "remoteDir": "share", "username": "u", "password": "p4ss", "seal": True}
SSHFS = {"host": "10.0.0.5", "port": 2222, "user": "backup", "remoteDir": "/srv/x",
         "privateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----"}


def test_valid_options_are_kept_and_extras_dropped():
    assert network.check_options("cifs", {**CIFS, "extra": 1}) == CIFS
    assert network.check_options("nfs", {"host": "fd00::1", "remoteDir": "/export"}) == \
        {"host": "fd00::1", "remoteDir": "/export"}
    assert network.check_options("sshfs", {**SSHFS, "port": None})["port"] == 22


@pytest.mark.parametrize("mount_type, options, field", [
    ("cifs", {**CIFS, "password": None}, "password"),
    ("cifs", {**CIFS, "host": "-oexec=evil"}, "host"),
    ("cifs", {**CIFS, "host": "a b"}, "host"),
    ("cifs", {**CIFS, "username": "u\npassword=x"}, "username"),
    ("cifs", {**CIFS, "password": "p\nusername=root"}, "password"),
    ("cifs", {**CIFS, "seal": "yes"}, "seal"),
    ("nfs", {"host": "h", "remoteDir": "export"}, "remoteDir"),
    ("nfs", {"host": "h", "remoteDir": "/a/../../etc"}, "remoteDir"),
    ("sshfs", {**SSHFS, "port": 0}, "port"),
    ("sshfs", {**SSHFS, "user": "-F/etc/x"}, "user"),
    ("sshfs", {**SSHFS, "remoteDir": "/x,allow_root"}, "remoteDir"),
])
def test_bad_fields_are_refused_by_name(mount_type, options, field):
    with pytest.raises(BadRequest) as err:
        network.check_options(mount_type, options)
    assert err.value.field == f"mountOptions.{field}"


def test_secrets_are_masked_and_a_mask_sent_back_keeps_them():
    shown = network.masked(CIFS)
    assert shown["password"] == MASK and shown["username"] == "u"
    again = network.check_options("cifs", {**shown, "username": "v"}, stored=CIFS)
    assert again["password"] == "p4ss" and again["username"] == "v"
    with pytest.raises(BadRequest):     # nothing stored: a mask is no password
        network.check_options("cifs", shown)


def test_secrets_go_to_private_files_not_to_the_command_line(tmp_path):
    keys = tmp_path / "keys"
    argv = network.mount_argv("cifs", CIFS, "/mnt/t", str(keys))
    assert "p4ss" not in " ".join(argv)
    creds = keys / "credentials"
    assert creds.read_text() == "username=u\npassword=p4ss\n"
    assert stat.S_IMODE(os.stat(creds).st_mode) == 0o600 and stat.S_IMODE(os.stat(keys).st_mode) == 0o700
    argv = network.mount_argv("sshfs", SSHFS, "/mnt/t", str(keys))
    assert "PRIVATE KEY" not in " ".join(argv) and argv[1] == "backup@10.0.0.5:/srv/x"
    assert (keys / "id").read_text().endswith("-----END OPENSSH PRIVATE KEY-----\n")


def test_a_missing_tool_is_named(monkeypatch):
    monkeypatch.setattr(network.shutil, "which", lambda name: None)
    with pytest.raises(BadRequest, match=r"mount\.cifs \(Debian package cifs-utils\)"):
        network.require_tool("cifs")
