"""POST /apps/{id}/import for real: an app is backed up (encrypted tgz) into folder A by one Berth
server (SQLite) with the busybox test image on the real Docker engine, the backup is moved to
folder B, the app's data changed, and the import with a config for B brings the data back while
the platform's backup config stays A.
"""
import os
import shutil

import pytest

from support.apps_env import apps_berth, unique

KEY = "correct horse battery staple"
SKIP = ("starts", "env")    # rewritten by the test image on every start


def files(root):
    """{relative path: (mode, bytes or link target)} of everything below root."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            if rel in SKIP:
                continue
            st = os.lstat(full)
            if os.path.islink(full):
                out[rel] = ("link", os.readlink(full))
            elif os.path.isdir(full):
                out[rel] = ("dir", st.st_mode)
            else:
                with open(full, "rb") as f:
                    out[rel] = ("file", st.st_mode, st.st_uid, f.read())
    return out


def write(root, rel, data, mode=0o644):
    full = os.path.join(root, rel)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "wb") as f:
        f.write(data)
    os.chmod(full, mode)


def config(folder, **extra):
    return {"provider": "filesystem", "backupFolder": folder, "format": "tgz", "retentionSecs": 7 * 86400,
            "intervalSecs": 86400, **extra}


@pytest.fixture(scope="module")
def env(parts, tmp_path_factory):
    with apps_berth(parts, tmp_path_factory) as berth:
        yield berth


@pytest.fixture(scope="module")
def moved(env, tmp_path_factory):
    """An app whose backup went from folder A (the platform's config) to folder B, data changed since."""
    folder_a = str(tmp_path_factory.mktemp("folder-a"))
    folder_b = str(tmp_path_factory.mktemp("folder-b"))
    r = env.api.post("/settings/backup_config", json=config(folder_a, key=KEY))
    assert r.status_code == 200, r.text
    app = env.install(unique("imp"))
    data = os.path.join(env.app_dir(app["id"]), "data")
    write(data, "docs/readme.txt", b"imported data\n" * 50)
    write(data, "secret/key.pem", b"private\n", 0o600)
    write(data, "blob.bin", os.urandom(200 * 1024))
    os.symlink("docs/readme.txt", os.path.join(data, "latest"))
    backed = files(data)
    task = env.run(env.api.post(f"/apps/{app['id']}/backup"))
    assert task["success"], task
    backup_id = task["result"]["backupId"]
    # the whole backup moves to B: A keeps nothing of it
    for name in os.listdir(folder_a):
        shutil.move(os.path.join(folder_a, name), os.path.join(folder_b, name))
    write(data, "docs/readme.txt", b"changed after the backup\n")
    os.remove(os.path.join(data, "blob.bin"))
    write(data, "new.txt", b"not in the backup")
    assert files(data) != backed
    return {"app": app, "data": data, "backed": backed, "backupId": backup_id, "a": folder_a, "b": folder_b}


def test_import_from_a_second_backup_folder_restores_the_data(env, moved):
    app_id = moved["app"]["id"]
    before_config = env.api.get("/settings/backup_config").json()
    body = {"backupId": moved["backupId"], "backupFormat": "tgz",
            "backupConfig": {"provider": "filesystem", "backupFolder": moved["b"], "format": "tgz", "password": KEY}}
    task = env.run(env.api.post(f"/apps/{app_id}/import", json=body))
    assert task["success"], task
    app = env.wait_app(app_id, "healthy after the import", lambda a: a["health"] == "healthy")
    assert (app["installationState"], app["runState"], app["error"]) == ("installed", "running", None)
    assert files(moved["data"]) == moved["backed"]
    assert env.curl(app["fqdn"], "/")[0] == 200
    # the platform's backup config is what it was (folder A)
    after_config = env.api.get("/settings/backup_config").json()
    assert after_config == before_config and after_config["backupFolder"] == moved["a"]


def test_import_with_a_wrong_password_fails_and_leaves_the_app_as_it_was(env, moved):
    app_id = moved["app"]["id"]
    write(moved["data"], "after-import.txt", b"kept")
    current = files(moved["data"])
    body = {"backupId": moved["backupId"],
            "backupConfig": {"provider": "filesystem", "backupFolder": moved["b"], "format": "tgz",
                             "password": "not the password"}}
    task = env.run(env.api.post(f"/apps/{app_id}/import", json=body))
    assert not task["success"], task
    app = env.app(app_id)
    assert (app["installationState"], app["error"]) == ("installed", None)
    assert files(moved["data"]) == current


def test_import_of_a_backup_the_storage_does_not_have_is_refused(env, moved, tmp_path):
    app_id = moved["app"]["id"]
    body = {"backupId": moved["backupId"],
            "backupConfig": {"provider": "filesystem", "backupFolder": moved["a"], "format": "tgz", "password": KEY}}
    r = env.api.post(f"/apps/{app_id}/import", json=body)
    assert r.status_code == 400 and "backupId" in r.json()["message"], r.text
    r = env.api.post(f"/apps/{app_id}/import", json={**body, "backupId": "../../etc/passwd"})
    assert r.status_code == 400, r.text
    r = env.api.post(f"/apps/{app_id}/import", json={**body, "backupConfig": {"provider": "filesystem",
                                                                               "backupFolder": "relative"}})
    assert r.status_code == 400, r.text
