"""Volumes over HTTP against one Berth server with the real engine and nginx: CRUD and refusals,
status, the volume file manager on a host folder, and volumes mounted into a busybox app at
/media/<name>, read-only (visible, not writable: checked with the engine's exec) or read-write.

Network types (cifs, nfs, sshfs) are exercised as far as this machine allows: their options are
checked and, without the host's mount program, the volume is refused naming that program.
"""
import os
import shutil
import subprocess
import time

import pytest

from core.masking import MASK
from support.apps_env import apps_berth, unique
from support.harness import free_port, require, tmpfs


@pytest.fixture(scope="module")
def berth(parts, tmp_path_factory):
    with apps_berth(parts, tmp_path_factory) as env:
        yield env


@pytest.fixture
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("volume")
    (path / "hello.txt").write_text("hello from the host\n")
    return str(path)


def _add(berth, host_path, name=None, mount_type="filesystem"):
    return berth.api.post("/volumes", json={"name": unique("vol") if name is None else name, "mountType": mount_type,
                                            "hostPath": host_path})


def _exec(berth, app_id, script):
    container = berth.docker.containers.get(berth.container(app_id)["Id"])
    code, out = container.exec_run(["sh", "-c", script])
    return code, out.decode(errors="replace")


def _sees(berth, app_id, path, text):
    try:
        return _exec(berth, app_id, f"cat {path}") == (0, text)
    except Exception:  # noqa: BLE001 - the container is being restarted: not yet
        return False


# ---- records ----------------------------------------------------------------------------------

def test_volume_crud_and_status(berth, folder):
    name = unique("data")
    r = _add(berth, folder + "/", name)
    assert r.status_code == 201, r.text
    volume_id = r.json()["id"]
    volume = berth.api.get(f"/volumes/{volume_id}").json()
    assert volume["name"] == name and volume["hostPath"] == folder      # trailing slash dropped
    assert volume["mountType"] == "filesystem" and volume["mountOptions"] == {}
    assert volume["creationTime"].endswith("Z")
    assert volume_id in [v["id"] for v in berth.api.get("/volumes").json()["volumes"]]
    assert berth.api.get(f"/volumes/{volume_id}/status").json() == {"state": "active",
                                                                    "message": "Folder is present"}
    assert _add(berth, folder, name).status_code == 409                      # same name
    r = _add(berth, folder)                                                   # same folder
    assert r.status_code == 409 and "hostPath" in r.json()["message"]
    r = berth.api.post(f"/volumes/{volume_id}", json={"mountOptions": {"host": "x"}})
    assert r.status_code == 400 and "network" in r.json()["message"]
    events = berth.api.get("/cloudron/eventlog", params={"action": "volume.add"}).json()["eventlogs"]
    assert any(e["data"].get("volumeId") == volume_id for e in events)

    os.rename(folder, folder + "-gone")
    try:
        status = berth.api.get(f"/volumes/{volume_id}/status").json()
        assert status["state"] == "inactive" and "does not exist" in status["message"]
    finally:
        os.rename(folder + "-gone", folder)
    assert berth.api.delete(f"/volumes/{volume_id}").status_code == 204
    assert berth.api.get(f"/volumes/{volume_id}").status_code == 404
    assert os.path.exists(os.path.join(folder, "hello.txt"))    # a host folder keeps its files


def test_system_folders_and_odd_paths_are_refused(berth, folder):
    data_dir = berth.data_dir
    for path in ("/", "/etc", "/proc", "/sys", "/dev", "/boot", "/var/lib/docker", "/var", "/run",
                 data_dir, os.path.dirname(data_dir), os.path.join(data_dir, "apps"), "/proc/self",
                 folder + "/../" + os.path.basename(folder), folder + "/missing"):
        r = _add(berth, path)
        assert r.status_code == 400, (path, r.text)
        assert "hostPath" in r.json()["message"], r.text
    assert _add(berth, "relative/path").status_code == 400
    r = _add(berth, folder, mount_type="mountpoint")          # a plain folder is no mount point
    assert r.status_code == 400 and "not a mount point" in r.json()["message"]
    for name in ("../x", "a/b", "", ".hidden", "x" * 65):
        assert _add(berth, folder, name).status_code == 400, name
    r = berth.api.post("/volumes", json={"name": unique("d"), "mountType": "ext4",
                                         "mountOptions": {"diskPath": "/dev/sdb"}})
    assert r.status_code == 400 and "mountpoint" in r.json()["message"]
    assert berth.api.get("/volumes/nope").status_code == 404


def test_volume_on_a_symlink_to_etc_is_refused(berth, tmp_path_factory):
    base = tmp_path_factory.mktemp("links")
    os.symlink("/etc", base / "etc-link")
    os.symlink("/", base / "root-link")
    for path in (base / "etc-link", base / "root-link" / "etc"):
        r = _add(berth, str(path))
        assert r.status_code == 400, r.text


def test_mountpoint_volume_on_a_real_mount_point(berth):
    with tmpfs("size=1m") as where:
        r = _add(berth, where, mount_type="mountpoint")
        assert r.status_code == 201, r.text
        volume_id = r.json()["id"]
        assert berth.api.get(f"/volumes/{volume_id}/status").json() == {"state": "active", "message": "Mounted"}
        assert berth.api.post(f"/volumes/{volume_id}/files/on-disk", files={"file": ("f", b"1")}).status_code == 200
        assert os.path.exists(os.path.join(where, "on-disk"))
        subprocess.run(["umount", "-l", where], check=True)
        # unmounted: inactive, and its files routes refuse rather than fill the folder underneath
        assert berth.api.get(f"/volumes/{volume_id}/status").json()["state"] == "inactive"
        r = berth.api.post(f"/volumes/{volume_id}/files/under", files={"file": ("f", b"1")})
        assert r.status_code == 404 and "not mounted" in r.json()["message"]
        assert not os.path.exists(os.path.join(where, "under"))
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", where], check=True)
        assert berth.api.delete(f"/volumes/{volume_id}").status_code == 204


NETWORK = {
    "cifs": {"host": "nas.example.test", "remoteDir": "share", "username": "u", "password": "Cifs-secret-1"},
    "nfs": {"host": "192.0.2.10", "remoteDir": "/export/media"},
    "sshfs": {"host": "192.0.2.11", "port": 22, "user": "u", "remoteDir": "/srv",
              "privateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n"},
}
TOOLS = {"cifs": "mount.cifs", "nfs": "mount.nfs", "sshfs": "sshfs"}


@pytest.mark.parametrize("mount_type", sorted(NETWORK))
def test_network_volume_options_are_checked_and_a_missing_tool_is_named(berth, mount_type):
    options = NETWORK[mount_type]
    bad = {**options, "host": "-o exec"}
    r = berth.api.post("/volumes", json={"name": unique(mount_type), "mountType": mount_type, "mountOptions": bad})
    assert r.status_code == 400 and "mountOptions.host" in r.json()["message"]
    missing = dict(options)
    missing.pop("remoteDir")
    r = berth.api.post("/volumes", json={"name": unique(mount_type), "mountType": mount_type,
                                         "mountOptions": missing})
    assert r.status_code == 400 and "mountOptions.remoteDir" in r.json()["message"]
    if shutil.which(TOOLS[mount_type]):
        return  # installed here (sshfs is, for the real share below): its absence cannot be seen
    r = berth.api.post("/volumes", json={"name": unique(mount_type), "mountType": mount_type, "mountOptions": options})
    assert r.status_code == 400, r.text
    assert TOOLS[mount_type] in r.json()["message"] and "not installed" in r.json()["message"]
    assert all(v["mountType"] != mount_type for v in berth.api.get("/volumes").json()["volumes"])


# ---- files ------------------------------------------------------------------------------------

def test_volume_files_list_download_upload_rename_delete(berth, folder):
    volume_id = _add(berth, folder).json()["id"]
    base = f"/volumes/{volume_id}/files"
    r = berth.api.get(f"{base}/%2E")      # the root: the router needs a non-empty filePath
    assert r.status_code == 200, r.text
    listing = r.json()["entries"]
    hello = next(e for e in listing if e["fileName"] == "hello.txt")
    assert hello["filePath"] == "/hello.txt" and hello["isFile"] and not hello["isDirectory"]
    assert hello["size"] == len("hello from the host\n") and hello["mtime"].endswith("Z")
    r = berth.api.get(f"{base}/hello.txt", params={"download": "true"})
    assert r.status_code == 200 and r.content == b"hello from the host\n"
    assert "hello.txt" in r.headers["Content-Disposition"]

    payload = os.urandom(300_000)
    r = berth.api.post(f"{base}/sub/blob.bin", files={"file": ("blob.bin", payload)})
    assert r.status_code == 200, r.text
    with open(os.path.join(folder, "sub", "blob.bin"), "rb") as f:
        assert f.read() == payload
    assert berth.api.get(f"{base}/sub/blob.bin").content == payload
    assert berth.api.post(f"{base}/sub/blob.bin", files={"file": ("blob.bin", b"x")}).status_code == 409
    r = berth.api.post(f"{base}/sub/blob.bin", files={"file": ("blob.bin", b"x")}, data={"overwrite": "true"})
    assert r.status_code == 200 and berth.api.get(f"{base}/sub/blob.bin").content == b"x"

    assert berth.api.post(f"{base}/made", params={"directory": "true"}).status_code == 200
    assert os.path.isdir(os.path.join(folder, "made"))
    r = berth.api.put(f"{base}/sub/blob.bin", json={"action": "rename", "newFilePath": "made/moved.bin"})
    assert r.status_code == 200, r.text
    assert os.path.exists(os.path.join(folder, "made", "moved.bin"))
    assert berth.api.delete(f"{base}/made", params={"recursive": "false"}).status_code == 400
    assert berth.api.delete(f"{base}/made").status_code == 200
    assert not os.path.exists(os.path.join(folder, "made"))
    assert berth.api.get(f"{base}/nothing-here").status_code == 404
    assert berth.api.get("/volumes/no-such-volume/files/x").status_code == 404
    assert berth.api.delete(f"/volumes/{volume_id}").status_code == 204


def test_volume_files_through_a_planted_symlink_never_reach_etc(berth, folder):
    volume_id = _add(berth, folder).json()["id"]
    os.symlink("/etc", os.path.join(folder, "escape"))
    base = f"/volumes/{volume_id}/files"
    entry = next(e for e in berth.api.get(f"{base}/%2E").json()["entries"] if e["fileName"] == "escape")
    assert entry["isSymbolicLink"] and entry["target"] == "/etc"
    for path in ("escape/passwd", "escape/", "escape", "..%2F..%2F..%2Fetc%2Fpasswd"):
        r = berth.api.get(f"{base}/{path}")
        assert r.status_code in (400, 403, 404), (path, r.status_code)
        assert "root:" not in r.text
    r = berth.api.post(f"{base}/escape/planted", files={"file": ("planted", b"x")})
    assert r.status_code in (400, 403, 404), r.text
    assert not os.path.exists("/etc/planted")
    assert berth.api.delete(f"{base}/escape").status_code == 200     # the link goes, /etc stays
    assert os.path.isdir("/etc/ssl") or os.path.exists("/etc/passwd")
    assert berth.api.delete(f"/volumes/{volume_id}").status_code == 204


# ---- mounts into an app -----------------------------------------------------------------------

def test_volume_mounted_read_only_is_visible_and_not_writable_then_read_write(berth, folder):
    name = unique("media")
    volume_id = _add(berth, folder, name).json()["id"]
    app = berth.install(unique("mnt"))
    app_id = app["id"]
    assert app["mounts"] == []

    task = berth.run(berth.api.post(f"/apps/{app_id}/configure/mounts",
                                    json={"mounts": [{"volumeId": volume_id, "readOnly": True}]}))
    assert task["success"], task
    app = berth.app(app_id)
    assert app["mounts"] == [{"volumeId": volume_id, "readOnly": True}]
    assert app["installationState"] == "installed" and app["runState"] == "running"
    code, out = _exec(berth, app_id, f"cat /media/{name}/hello.txt")
    assert code == 0 and out == "hello from the host\n"
    code, _ = _exec(berth, app_id, f"echo x > /media/{name}/written")
    assert code != 0
    assert not os.path.exists(os.path.join(folder, "written"))

    r = berth.api.delete(f"/volumes/{volume_id}")
    assert r.status_code == 409 and app["fqdn"] in r.json()["message"]

    task = berth.run(berth.api.post(f"/apps/{app_id}/configure/mounts",
                                    json={"mounts": [{"volumeId": volume_id, "readOnly": False}]}))
    assert task["success"], task
    code, out = _exec(berth, app_id, f"echo from-the-app > /media/{name}/written && echo ok")
    assert code == 0, out
    with open(os.path.join(folder, "written")) as f:
        assert f.read() == "from-the-app\n"

    task = berth.run(berth.api.post(f"/apps/{app_id}/configure/mounts", json={"mounts": []}))
    assert task["success"], task
    assert berth.app(app_id)["mounts"] == []
    code, _ = _exec(berth, app_id, f"test -e /media/{name}")
    assert code != 0
    assert berth.api.delete(f"/volumes/{volume_id}").status_code == 204
    assert berth.run(berth.api.post(f"/apps/{app_id}/uninstall"))["success"]


def test_bad_mounts_are_refused_before_any_task(berth, folder):
    app = berth.install(unique("badmnt"))
    volume_id = _add(berth, folder).json()["id"]
    url = f"/apps/{app['id']}/configure/mounts"
    r = berth.api.post(url, json={"mounts": [{"volumeId": "no-such-volume", "readOnly": True}]})
    assert r.status_code == 404, r.text
    assert berth.api.post(url, json={"mounts": [{"volumeId": volume_id}]}).status_code == 400
    r = berth.api.post(url, json={"mounts": [{"volumeId": volume_id, "readOnly": True}] * 2})
    assert r.status_code == 400, r.text
    assert berth.api.post("/apps/no-such-app/configure/mounts",
                          json={"mounts": [{"volumeId": volume_id, "readOnly": True}]}).status_code == 404
    assert berth.app(app["id"])["mounts"] == []
    assert berth.app(app["id"])["taskId"] is None
    assert berth.api.delete(f"/volumes/{volume_id}").status_code == 204
    assert berth.run(berth.api.post(f"/apps/{app['id']}/uninstall"))["success"]


# ---- a real network volume: sshfs to an sshd of the test ----------------------------------------

@pytest.fixture
def sshd(tmp_path_factory):
    """An OpenSSH server on a free loopback port that lets in the key it hands out; yields
    (port, private key text, the folder to share)."""
    sshd_bin = "/usr/sbin/sshd"
    require("an OpenSSH server (Debian package openssh-server)", os.path.exists(sshd_bin))
    require("sshfs (Debian package sshfs)", shutil.which("sshfs") is not None)
    require("FUSE (/dev/fuse)", os.path.exists("/dev/fuse"))
    base = tmp_path_factory.mktemp("sshd")
    for key in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(base / key)], check=True)
    shutil.copy(base / "client.pub", base / "authorized_keys")
    share = base / "share"
    share.mkdir()
    (share / "remote.txt").write_text("over ssh\n")
    port = free_port()
    (base / "config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {base}/host\nAuthorizedKeysFile {base}/authorized_keys\n"
        f"PermitRootLogin prohibit-password\nPasswordAuthentication no\nPidFile {base}/pid\nStrictModes no\n"
        "UsePAM no\nSubsystem sftp internal-sftp\n")
    os.makedirs("/run/sshd", exist_ok=True)       # its privilege separation folder
    proc = subprocess.Popen([sshd_bin, "-D", "-f", str(base / "config"), "-E", str(base / "log")])
    try:
        yield port, (base / "client").read_text(), str(share)
    finally:
        proc.terminate()
        proc.wait(10)


def test_sshfs_volume_is_mounted_masked_served_and_bound_into_an_app(berth, sshd):
    port, key, share = sshd
    options = {"host": "127.0.0.1", "port": port, "user": "root", "remoteDir": share, "privateKey": key}
    name = unique("ssh")
    r = berth.api.post("/volumes", json={"name": name, "mountType": "sshfs", "mountOptions": options})
    assert r.status_code == 201, r.text
    volume_id = r.json()["id"]
    host_path = os.path.join(berth.data_dir, "volumes", volume_id)
    app_id = None
    try:
        volume = berth.api.get(f"/volumes/{volume_id}").json()
        assert volume["mountOptions"] == {**options, "privateKey": MASK}
        assert volume["hostPath"] == host_path
        assert key not in berth.api.get("/volumes").text
        assert berth.api.get(f"/volumes/{volume_id}/status").json() == {"state": "active", "message": "Mounted"}
        assert berth.api.get(f"/volumes/{volume_id}/files/remote.txt").content == b"over ssh\n"

        # sent back masked: the stored key stays and the share is mounted again with it
        r = berth.api.post(f"/volumes/{volume_id}", json={"mountOptions": volume["mountOptions"]})
        assert r.status_code == 200, r.text
        assert berth.api.get(f"/volumes/{volume_id}/status").json()["state"] == "active"
        # settings that do not reach the server are refused, and the working mount comes back
        r = berth.api.post(f"/volumes/{volume_id}", json={"mountOptions": {**options, "port": free_port()}})
        assert r.status_code == 400 and "could not mount" in r.json()["message"]
        assert berth.api.get(f"/volumes/{volume_id}/status").json()["state"] == "active"

        app_id = berth.install(unique("sshapp"))["id"]
        task = berth.run(berth.api.post(f"/apps/{app_id}/configure/mounts",
                                        json={"mounts": [{"volumeId": volume_id, "readOnly": True}]}))
        assert task["success"], task
        code, out = _exec(berth, app_id, f"cat /media/{name}/remote.txt")
        assert code == 0 and out == "over ssh\n"

        # a reboot, as far as the share knows: it is gone when Berth starts again, and Berth's
        # start-up reconciliation mounts it and restarts the app, which sees the file again
        berth.server.stop()
        subprocess.run(["fusermount", "-u", "-z", host_path], check=True)
        assert not os.path.ismount(host_path)
        berth.start()
        deadline = time.time() + 60
        while not (os.path.ismount(host_path) and _sees(berth, app_id, f"/media/{name}/remote.txt", "over ssh\n")):
            assert time.time() < deadline, "the share was not mounted again for the app"
            time.sleep(0.5)
        assert berth.api.delete(f"/volumes/{volume_id}").status_code == 409
        assert berth.run(berth.api.post(f"/apps/{app_id}/uninstall"))["success"]
        app_id = None
        assert key not in berth.server.log()
        # stored sealed: no line of the key in the database files
        for db_file in ("berth.db", "berth.db-wal"):
            path = os.path.join(berth.data_dir, db_file)
            if os.path.exists(path):
                with open(path, "rb") as f:
                    assert key.splitlines()[1].encode() not in f.read()
    finally:
        if app_id:
            berth.run(berth.api.post(f"/apps/{app_id}/uninstall"))
        r = berth.api.delete(f"/volumes/{volume_id}")
        if os.path.ismount(host_path):          # never leave the share mounted inside a folder rmtree removes
            subprocess.run(["fusermount", "-u", "-z", host_path], check=False)
    assert r.status_code == 204, r.text
    assert not os.path.exists(host_path)
    assert os.path.exists(os.path.join(share, "remote.txt"))
