"""After a run that used every secret-bearing route, no secret is found in clear where it must not be.

Secrets used: passwords (activation, login, new users, own change, admin reset), tokens (login,
created, passed as `?access_token=`), an app password, the S3 secret and the backup encryption
key (an encrypted box backup is made with them), and an uploaded TLS private key.

Where they may be, by design: the S3 secret and the backup key in the database (Berth needs them to
work; the file is 0600 in a 0700 folder), private keys in the database and in certs/*.key (0600).
Everywhere else (server log with the access log, task logs, every other file of the data dir, the
event log and task logs as the API serves them) none of them may appear; passwords and tokens
appear nowhere at all, the database included (only their hashes are stored).
"""
import os
import stat
import time

import pytest

from support.certs import make_cert
from support.harness import Api, BerthServer, activate, unique

DOMAIN = "secrets.example.test"


@pytest.fixture(scope="module")
def server():
    srv = BerthServer().start()
    yield srv
    srv.cleanup()


def _wait_task(api, task_id, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        task = api.get(f"/tasks/{task_id}").json()
        if not task["active"] and not task["pending"]:
            return task
        time.sleep(0.3)
    raise AssertionError(f"task {task_id} did not finish")


def _use_every_secret(server, s3):
    """Drive the secret-bearing routes; returns {secret: where it may legitimately be stored}."""
    secrets = {}
    owner = activate(server, password="Owner-pass-1")
    secrets["Owner-pass-1"] = set()
    r = Api(server.api).post("/cloudron/login", json={"username": "owner", "password": "Owner-pass-1"})
    assert r.status_code == 200, r.text
    secrets[r.json()["token"]] = set()

    r = owner.post("/users", json={"username": "sam", "email": "sam@example.com", "password": "Sam-pass-1234"})
    assert r.status_code == 201, r.text
    sam_id = r.json()["id"]
    secrets["Sam-pass-1234"] = set()
    r = owner.post(f"/users/{sam_id}/password", json={"password": "Sam-reset-5678"})
    assert r.status_code in (200, 204), r.text
    secrets["Sam-reset-5678"] = set()
    r = owner.post("/profile/password", json={"password": "Owner-pass-1", "newPassword": "Owner-pass-2"})
    assert r.status_code in (200, 204), r.text
    secrets["Owner-pass-2"] = set()
    owner = Api(server.api)
    r = owner.post("/cloudron/login", json={"username": "owner", "password": "Owner-pass-2"})
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    secrets[token] = set()
    owner = owner.with_token(token)

    r = owner.post("/tokens", json={"name": "script"})
    assert r.status_code == 201, r.text
    created = r.json()["accessToken"]
    secrets[created] = set()
    assert Api(server.api).get(f"/profile?access_token={created}").status_code == 200   # token in a query
    r = owner.post("/app_passwords", json={"name": "mail", "identifier": "mail"})
    assert r.status_code == 201, r.text
    secrets[r.json()["password"]] = set()

    cert, key = make_cert([DOMAIN, "*." + DOMAIN])
    r = owner.post("/domains", json={"domain": DOMAIN, "provider": "noop", "config": {},
                                     "fallbackCertificate": {"cert": cert, "key": key}})
    assert r.status_code == 201, r.text
    key_body = key.splitlines()[1]                      # a line of the key's base64
    secrets[key_body] = {"berth.db", "certs"}

    bucket = unique("b").lower()
    s3.client().create_bucket(Bucket=bucket)
    encryption_key = "Backup-encryption-" + unique("k")
    r = owner.post("/settings/backup_config", json=s3.config(bucket, key=encryption_key))
    assert r.status_code == 200, r.text
    secrets[s3.secret_key] = {"berth.db"}
    secrets[encryption_key] = {"berth.db"}
    task = _wait_task(owner, owner.post("/backups/create").json()["taskId"])
    assert task["success"], task
    return owner, secrets


def _files(root):
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            if stat.S_ISREG(os.lstat(path).st_mode):
                yield path


def _allowed(path, root, places):
    rel = os.path.relpath(path, root)
    return any(rel == p or rel.startswith(p + "-") or rel.startswith(p + os.sep) for p in places)


def test_no_secret_in_clear_in_logs_data_dir_or_api_answers(server, s3):
    owner, secrets = _use_every_secret(server, s3)
    found = []
    for path in _files(server.data_dir):          # also server.log: stdout/stderr with the access log
        with open(path, "rb") as f:
            data = f.read()
        for secret, places in secrets.items():
            if secret.encode() in data and not _allowed(path, server.data_dir, places):
                found.append((os.path.relpath(path, server.data_dir), secret[:12] + "…"))
    events = owner.get("/cloudron/eventlog", params={"per_page": 1000}).text
    found += [("eventlog", s[:12] + "…") for s in secrets if s in events]
    for task in owner.get("/tasks", params={"per_page": 100}).json()["tasks"]:
        log = owner.get(f"/tasks/{task['id']}/logs", params={"lines": 100000, "format": "plain"}).text
        found += [(f"task {task['id']} log", s[:12] + "…") for s in secrets if s in log]
    assert found == []
    # and the places where secrets must live are private
    assert stat.S_IMODE(os.stat(server.data_dir).st_mode) == 0o700
    for path in _files(server.data_dir):
        rel = os.path.relpath(path, server.data_dir)
        if rel.startswith("berth.db") or rel.endswith(".key"):
            assert stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0, rel
