"""The app's data folder over HTTP for real: one Berth server, one busybox app on the real engine.
Files go in through /files and /upload and are checked inside the container (docker exec cat),
come back byte-exact through /files and /download, and a symlink the app plants to the host's
/etc never leads out of its folder."""
import gzip
import io
import os
import tarfile

import pytest

from support.apps_env import _berth, unique

PASSWORD = "User-pass-1"


@pytest.fixture(scope="module")
def env(parts, tmp_path_factory):
    env = _berth(parts, tmp_path_factory)
    try:
        env.start()
        env.app_id = env.install(unique("files"))["id"]
        env.container = env.docker.containers.get(f"berth-{env.app_id}")
        name = unique("member")
        r = env.api.post("/users", json={"username": name, "email": f"{name}@example.com",
                                         "password": PASSWORD, "role": "user"})
        assert r.status_code == 201, r.text
        r = env.api.post("/cloudron/login", json={"username": name, "password": PASSWORD})
        env.user_api = env.api.with_token(r.json()["token"])
        yield env
    finally:
        env.close()


def _in_container(env, *cmd):
    code, out = env.container.exec_run(list(cmd))
    return code, out


def _files(env, path):
    return f"/apps/{env.app_id}/files/{path}"


def test_upload_appears_in_the_container_and_downloads_byte_exact(env):
    content = os.urandom(700 * 1024) + b"\0\r\n\xff"   # larger than the in-memory spool
    r = env.api.post(_files(env, "up/blob.bin"), files={"file": ("blob.bin", content)})
    assert r.status_code == 200, r.text
    code, out = _in_container(env, "cat", "/app/data/up/blob.bin")
    assert code == 0 and out == content
    r = env.api.get(_files(env, "up/blob.bin"))
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/octet-stream"
    assert r.content == content
    r = env.api.get(_files(env, "up/blob.bin"), params={"download": "true"})
    assert "attachment" in r.headers["Content-Disposition"] and r.content == content
    # Without overwrite an existing file is kept; with it, replaced.
    r = env.api.post(_files(env, "up/blob.bin"), files={"file": ("blob.bin", b"new")})
    assert r.status_code == 409, r.text
    r = env.api.post(_files(env, "up/blob.bin"), files={"file": ("blob.bin", b"new")}, data={"overwrite": "true"})
    assert r.status_code == 200 and _in_container(env, "cat", "/app/data/up/blob.bin")[1] == b"new"


def test_listing_mkdir_rename_copy_delete(env):
    assert env.api.post(_files(env, "tree/sub"), params={"directory": "true"}).status_code == 200
    assert env.api.post(_files(env, "tree/sub"), params={"directory": "true"}).status_code == 409
    env.api.post(_files(env, "tree/sub/f.txt"), files={"file": ("f.txt", b"12345")})
    r = env.api.get(_files(env, "tree"))
    assert r.status_code == 200, r.text
    [sub] = r.json()["entries"]
    assert (sub["fileName"], sub["isDirectory"], sub["filePath"]) == ("sub", True, "/tree/sub")
    [f] = env.api.get(_files(env, "tree/sub")).json()["entries"]
    assert (f["fileName"], f["isFile"], f["size"], f["mode"]) == ("f.txt", True, 5, 0o644)
    r = env.api.put(_files(env, "tree/sub"), json={"action": "rename", "newFilePath": "tree/moved"})
    assert r.status_code == 200, r.text
    assert _in_container(env, "cat", "/app/data/tree/moved/f.txt") == (0, b"12345")
    r = env.api.put(_files(env, "tree/moved"), json={"action": "copy", "newFilePath": "tree/copy"})
    assert r.status_code == 200, r.text
    assert env.api.get(_files(env, "tree/copy/f.txt")).content == b"12345"
    assert env.api.delete(_files(env, "tree/moved"), params={"recursive": "false"}).status_code == 400
    assert env.api.delete(_files(env, "tree/moved")).status_code == 200
    assert _in_container(env, "ls", "/app/data/tree") == (0, b"copy\n")
    assert env.api.get(_files(env, "tree/moved")).status_code == 404
    root = {e["fileName"]: e for e in env.api.get(_files(env, "")).json()["entries"]}  # `.../files/`
    assert root["starts"]["isFile"] and root["tree"]["filePath"] == "/tree"


def test_push_and_pull_files_and_folders(env):
    content = os.urandom(300 * 1024)
    r = env.api.post(f"/apps/{env.app_id}/upload", params={"file": "/app/data/pushed/one.bin"},
                     files={"file": ("one.bin", content)})
    assert r.status_code == 202, r.text
    assert _in_container(env, "cat", "/app/data/pushed/one.bin")[1] == content
    r = env.api.get(f"/apps/{env.app_id}/download", params={"file": "/app/data/pushed/one.bin"})
    assert r.status_code == 200 and r.content == content and r.headers["Content-Length"] == str(len(content))
    # A folder goes in as a tar (extract=true) and comes back as .tar.gz of its contents.
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in (("a.txt", b"alpha"), ("deep/b.txt", b"beta")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    r = env.api.post(f"/apps/{env.app_id}/upload", params={"file": "/app/data/folder", "extract": "true"},
                     files={"file": ("folder.tar.gz", buf.getvalue())})
    assert r.status_code == 202, r.text
    assert _in_container(env, "cat", "/app/data/folder/deep/b.txt") == (0, b"beta")
    r = env.api.get(f"/apps/{env.app_id}/download", params={"file": "/app/data/folder"})
    assert r.status_code == 200 and "folder.tar.gz" in r.headers["Content-Disposition"]
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(r.content))) as t:
        got = {m.name: t.extractfile(m).read() for m in t if m.isfile()}
    assert got == {"./a.txt": b"alpha", "./deep/b.txt": b"beta"}
    r = env.api.get(f"/apps/{env.app_id}/download", params={"file": "/etc/passwd"})
    assert r.status_code == 400


def test_symlink_planted_to_host_etc_is_refused(env):
    """The app plants /app/data/evil -> /etc: on the host that link points at the host's /etc."""
    assert _in_container(env, "ln", "-s", "/etc", "/app/data/evil")[0] == 0
    assert _in_container(env, "ln", "-s", "/etc/hostname", "/app/data/evil-file")[0] == 0
    host_hostname = open("/etc/hostname", "rb").read()
    for path in ("evil/hostname", "evil-file", "evil"):
        r = env.api.get(_files(env, path))
        assert r.status_code in (403, 404), (path, r.status_code, r.text)
        assert host_hostname not in r.content
    for path in ("/app/data/evil/hostname", "/app/data/evil-file"):
        r = env.api.get(f"/apps/{env.app_id}/download", params={"file": path})
        assert r.status_code in (403, 404), (path, r.status_code)
    r = env.api.post(_files(env, "evil/berth-planted"), files={"file": ("x", b"x")})
    assert r.status_code in (403, 404)
    assert not os.path.exists("/etc/berth-planted")
    r = env.api.post(f"/apps/{env.app_id}/upload", params={"file": "/app/data/evil/berth-planted"},
                     files={"file": ("x", b"x")})
    assert r.status_code in (403, 404)
    assert not os.path.exists("/etc/berth-planted")
    # The link itself is listed as a link and can be removed; /etc stays.
    entries = {e["fileName"]: e for e in env.api.get(_files(env, "up")).json()["entries"]} or {}
    assert "blob.bin" in entries
    assert env.api.delete(_files(env, "evil")).status_code == 200
    assert os.path.isfile("/etc/hostname")


def test_non_admins_and_unknown_apps_are_refused(env):
    assert env.user_api.get(_files(env, "up")).status_code == 403
    assert env.user_api.post(_files(env, "x"), params={"directory": "true"}).status_code == 403
    assert env.user_api.get(f"/apps/{env.app_id}/download", params={"file": "/app/data/up"}).status_code == 403
    assert env.api.get("/apps/no-such-app/files/x").status_code == 404
