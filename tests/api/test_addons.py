"""Addons for real: a Berth server installs the addon test app (tests/support/addon_app.py), which
writes to its PostgreSQL, MySQL and Redis using only the CLOUDRON_* variables Berth gives it, on
the real Docker engine with the database services Berth runs (images built from Debian packages
on these offline machines, as on a server); everything is checked through the API, the proxy and
the engine.

One server and one addon app are shared by the tests, in file order: install, backup / restore /
clone, uninstall. Teardown removes the apps' containers, the services and the app network of the
server. Waits have timeouts only to fail instead of hanging: the first provisioning starts the
database services.
"""
import hashlib
import json
import os
import sqlite3
import tarfile
import time

import pytest

import mail
from support import addon_app, images
from support.apps_env import AppsBerth, unique
from support.harness import Api, BerthServer

DB_ADDONS = {"postgresql": {}, "mysql": {}, "redis": {}, "localstorage": {}, "tls": {}}
SLOW = 600      # seconds: a first provisioning starts the services


def _instance(data_dir):
    return hashlib.sha256(os.path.realpath(data_dir).encode()).hexdigest()[:16]


def _remove_services(client, data_dir):
    """The service containers and app network of the server with this data dir."""
    instance = _instance(data_dir)
    for container in client.containers.list(all=True, filters={"label": f"berth.instance={instance}"}):
        container.remove(force=True, v=True)
    for network in client.networks.list(filters={"label": f"berth.instance={instance}"}):
        network.remove()


@pytest.fixture(scope="module")
def env(parts, tmp_path_factory):
    image = addon_app.image(parts["docker"])
    berth = AppsBerth(image, parts["catalog"], parts["docker"], str(tmp_path_factory.mktemp("berth-addons")))
    try:
        yield berth.start()
    finally:
        data_dir = berth.data_dir
        try:
            berth.close()
        finally:
            _remove_services(parts["docker"], data_dir)


@pytest.fixture(scope="module")
def app(env):
    """The addon app with PostgreSQL, MySQL, Redis, localstorage and tls, installed."""
    r = env.request_install(unique("db"), env.manifest(id="io.berth.test.addons", addons=DB_ADDONS))
    assert r.status_code == 202, r.text
    wait(env, r.json()["taskId"])
    return env.app(r.json()["id"])


def wait(env, task_id):
    """The finished task, which must have succeeded; its log is in the failure otherwise."""
    try:
        task = env.wait_task(task_id, timeout=SLOW)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{env.task_log(task_id)[-3000:]}") from None
    assert task["success"], (task, env.task_log(task_id)[-3000:])
    return task


def state(env, fqdn):
    status, _, body = env.curl(fqdn, "/cgi-bin/state")
    assert status == 200, body
    return dict(line.split("=", 1) for line in body.splitlines() if "=" in line)


def set_value(env, fqdn, value):
    status, _, body = env.curl(fqdn, f"/cgi-bin/set?{value}")
    assert status == 200 and f"set {value}" in body, body


def container_env(env, app_id):
    return dict(item.split("=", 1) for item in env.container(app_id)["Config"]["Env"])


def service(env, name):
    instance = _instance(env.data_dir)
    found = env.docker.containers.list(filters={"label": [f"berth.service={name}", f"berth.instance={instance}"]})
    assert len(found) == 1, found
    return found[0]


def pg_names(env):
    """(databases, roles) on the PostgreSQL service, as its superuser sees them."""
    pg = service(env, "postgresql")
    out = {}
    for what, sql in (("db", "SELECT datname FROM pg_database"), ("role", "SELECT rolname FROM pg_roles")):
        code, text = pg.exec_run(["psql", "-X", "-tA", "-c", sql], user="postgres")
        assert code == 0, text
        out[what] = set(text.decode().split())
    return out["db"], out["role"]


def mysql_names(env):
    """(databases, users) on the MySQL service (root's password from Berth's own database)."""
    with sqlite3.connect(os.path.join(env.data_dir, "berth.db")) as db:
        (password,) = db.execute("SELECT root_password FROM addon_service WHERE name = 'mysql'").fetchone()
    my = service(env, "mysql")
    out = {}
    for what, sql in (("db", "SHOW DATABASES"), ("user", "SELECT User FROM mysql.user")):
        code, text = my.exec_run(["mariadb", "-uroot", "-N", "-B", "-e", sql], environment={"MYSQL_PWD": password})
        assert code == 0, text
        out[what] = set(text.decode().split())
    return out["db"], out["user"]


# ---- install ----------------------------------------------------------------------------------

def test_install_gives_the_app_its_databases(env, app):
    assert (app["installationState"], app["health"]) == ("installed", "healthy"), app
    # What the app wrote at start with the injected variables, read back through the proxy.
    assert state(env, app["fqdn"]) == {"postgresql": "first", "mysql": "first", "redis": "first",
                                       "localstorage": "first"}
    given = container_env(env, app["id"])
    for name in ("URL", "HOST", "PORT", "USERNAME", "PASSWORD", "DATABASE"):
        assert given[f"CLOUDRON_POSTGRESQL_{name}"] and given[f"CLOUDRON_MYSQL_{name}"], name
    for name in ("URL", "HOST", "PORT", "PASSWORD"):
        assert given[f"CLOUDRON_REDIS_{name}"], name
    assert given["CLOUDRON_APP_ORIGIN"] == env.origin(app["fqdn"])
    # Its own database and user, which no other role may open.
    databases, roles = pg_names(env)
    assert given["CLOUDRON_POSTGRESQL_DATABASE"] in databases
    assert given["CLOUDRON_POSTGRESQL_USERNAME"] in roles
    # tls: the certificate and key nginx serves for it, read-only at Cloudron's paths.
    info = env.container(app["id"])
    certs = [m for m in info["Mounts"] if m["Destination"] == "/etc/certs"]
    assert len(certs) == 1 and certs[0]["RW"] is False, info["Mounts"]
    container = env.docker.containers.get(info["Id"])
    code, out = container.exec_run(["cat", "/etc/certs/tls_cert.pem", "/etc/certs/tls_key.pem"])
    assert code == 0 and b"BEGIN CERTIFICATE" in out and b"PRIVATE KEY" in out, out
    code, _ = container.exec_run(["sh", "-c", "echo x > /etc/certs/tls_cert.pem"])
    assert code != 0


def test_an_addon_berth_cannot_provide_is_refused_before_anything_is_created(env):
    before = {a["id"] for a in env.api.get("/apps").json()["apps"]}
    location = unique("mongo")
    r = env.request_install(location, env.manifest(addons={"mongodb": {}, "postgresql": {}}))
    assert r.status_code == 400, r.text
    assert "manifest.addons.mongodb" in r.json()["message"], r.text
    assert {a["id"] for a in env.api.get("/apps").json()["apps"]} == before
    assert env.docker.containers.list(all=True, filters={"name": location}) == []
    r = env.request_install(unique("cron"), env.manifest(
        addons={"scheduler": {"bad": {"schedule": "every minute", "command": "true"}}}))
    assert r.status_code == 400 and "manifest.addons.scheduler.bad.schedule" in r.json()["message"], r.text
    if not hasattr(mail, "app_mailbox_credentials"):
        # The mail package gives no app mailboxes on this tree: sendmail cannot be provided.
        r = env.request_install(unique("mail"), env.manifest(addons={"sendmail": {}}))
        assert r.status_code == 400, r.text
        assert "manifest.addons.sendmail" in r.json()["message"], r.text
        assert "not available on this server" in r.json()["message"], r.text
    assert {a["id"] for a in env.api.get("/apps").json()["apps"]} == before


# ---- backup, restore, clone -------------------------------------------------------------------

def test_backup_restore_and_clone_carry_the_databases(env, app, tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("addon-backups"))
    r = env.api.post("/settings/backup_config", json={
        "provider": "filesystem", "backupFolder": folder, "format": "tgz", "retentionSecs": 7 * 86400,
        "intervalSecs": 86400})
    assert r.status_code == 200, r.text
    # Symlinks the app planted out of its data folder: the backup's copy of the folder (hard
    # links beside the dumps) must keep them as symlinks, never follow them.
    data = os.path.join(env.app_dir(app["id"]), "data")
    os.symlink("/etc", os.path.join(data, "escape"))
    os.symlink("/etc/passwd", os.path.join(data, "passwd"))
    task = env.run(env.api.post(f"/apps/{app['id']}/backup"))
    assert task["success"], (task, env.task_log(task["id"]))
    backup_id = task["result"]["backupId"]
    # The backup holds the data folder beside a dump of each database (Cloudron's layout).
    with tarfile.open(os.path.join(folder, backup_id + ".tar.gz")) as tar:
        members = {m.name.removeprefix("./"): m for m in tar.getmembers()}
    assert {"postgresqldump", "mysqldump", "dump.rdb", "data/value"} <= set(members), sorted(members)
    assert members["data/escape"].issym() and members["data/passwd"].issym(), members
    assert not [name for name in members if name.startswith("data/escape/")]
    assert not os.listdir(os.path.join(env.data_dir, "backup-work"))   # the snapshot went

    set_value(env, app["fqdn"], "second")
    assert set(state(env, app["fqdn"]).values()) == {"second"}
    task = env.run(env.api.post(f"/apps/{app['id']}/restore", json={"backupId": backup_id}))
    assert task["success"], (task, env.task_log(task["id"]))
    env.wait_app(app["id"], "healthy after the restore", lambda a: a["health"] == "healthy", timeout=60)
    assert set(state(env, app["fqdn"]).values()) == {"first"}

    location = unique("dbclone")
    r = env.api.post(f"/apps/{app['id']}/clone", json={"backupId": backup_id, "location": location,
                                                        "domain": app["domain"]})
    assert r.status_code == 201, r.text
    clone_id = r.json()["id"]
    env.app_ids.add(clone_id)
    wait(env, r.json()["taskId"])
    clone = env.app(clone_id)
    assert set(state(env, clone["fqdn"]).values()) == {"first"}
    # Two apps, two sets of databases with credentials of their own.
    mine, theirs = container_env(env, app["id"]), container_env(env, clone_id)
    for name in ("POSTGRESQL_DATABASE", "POSTGRESQL_USERNAME", "POSTGRESQL_PASSWORD", "MYSQL_DATABASE",
                 "MYSQL_USERNAME", "MYSQL_PASSWORD", "REDIS_HOST", "REDIS_PASSWORD"):
        assert mine[f"CLOUDRON_{name}"] != theirs[f"CLOUDRON_{name}"], name
    set_value(env, clone["fqdn"], "third")
    assert set(state(env, clone["fqdn"]).values()) == {"third"}
    assert set(state(env, app["fqdn"]).values()) == {"first"}

    # Uninstalling the clone removes its databases, users and Redis; the source keeps its own.
    task = env.run(env.api.post(f"/apps/{clone_id}/uninstall"))
    assert task["success"], (task, env.task_log(task["id"]))
    databases, roles = pg_names(env)
    assert theirs["CLOUDRON_POSTGRESQL_DATABASE"] not in databases
    assert theirs["CLOUDRON_POSTGRESQL_USERNAME"] not in roles
    assert mine["CLOUDRON_POSTGRESQL_DATABASE"] in databases
    databases, users = mysql_names(env)
    assert theirs["CLOUDRON_MYSQL_DATABASE"] not in databases
    assert theirs["CLOUDRON_MYSQL_USERNAME"] not in users
    assert mine["CLOUDRON_MYSQL_USERNAME"] in users
    assert not env.docker.containers.list(all=True, filters={"label": f"berth.service=redis-{clone_id}"})
    assert set(state(env, app["fqdn"]).values()) == {"first"}


# ---- scheduler --------------------------------------------------------------------------------

def test_scheduler_entry_runs_in_the_app_container_and_logs_there(env, parts):
    marker = f"berth-cron-{unique('tick')}"
    manifest = env.manifest(dockerImage=parts["image"], healthCheckPath=images.HEALTH_PATH, addons={
        "scheduler": {"tick": {"schedule": "*/2 * * * * *", "command": f"echo {marker} $CLOUDRON_APP_ID"}}})
    installed = env.install(unique("cron"), manifest)
    app_id = installed["id"]
    deadline = time.time() + 30
    while True:
        r = env.api.get(f"/apps/{app_id}/logs", params={"lines": 200, "format": "plain"})
        assert r.status_code == 200, r.text
        ticks = [line for line in r.text.splitlines() if f"{marker} {app_id}" in line]
        if len(ticks) >= 2:
            break
        assert time.time() < deadline, f"the scheduler entry never ran twice: {r.text[-2000:]}"
        time.sleep(0.5)

    # An update replaces the entries with the new manifest's; uninstall takes them all away.
    newer = {**manifest, "version": "1.0.1", "addons": {"scheduler": {
        "tock": {"schedule": "0 0 * * *", "command": "echo tock"}}}}
    task = env.run(env.api.post(f"/apps/{app_id}/update", json={"manifest": newer}))
    assert task["success"], task
    assert [args["entry"] for _, args in schedules_of(env, app_id)] == ["tock"]
    task = env.run(env.api.post(f"/apps/{app_id}/uninstall"))
    assert task["success"], task
    assert schedules_of(env, app_id) == []


def schedules_of(env, app_id):
    """(pattern, args) of the app's scheduler entries in the schedules table."""
    with sqlite3.connect(os.path.join(env.data_dir, "berth.db")) as db:
        rows = db.execute("SELECT pattern, args FROM schedules WHERE name LIKE ?", (f"app-cron:{app_id}:%",))
        return [(pattern, json.loads(args)) for pattern, args in rows.fetchall()]


# ---- uninstall --------------------------------------------------------------------------------

def test_uninstall_removes_the_databases_and_users(env, app):
    given = container_env(env, app["id"])
    task = env.run(env.api.post(f"/apps/{app['id']}/uninstall"))
    assert task["success"], (task, env.task_log(task["id"]))
    databases, roles = pg_names(env)
    assert given["CLOUDRON_POSTGRESQL_DATABASE"] not in databases
    assert given["CLOUDRON_POSTGRESQL_USERNAME"] not in roles
    databases, users = mysql_names(env)
    assert given["CLOUDRON_MYSQL_DATABASE"] not in databases
    assert given["CLOUDRON_MYSQL_USERNAME"] not in users
    assert not env.docker.containers.list(all=True, filters={"label": f"berth.service=redis-{app['id']}"})
    assert not os.path.exists(env.app_dir(app["id"]))


# ---- whole-Cloudron restore -------------------------------------------------------------------

def test_box_backup_brings_the_databases_to_a_fresh_server(parts, tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("addon-box-backups"))
    image = addon_app.image(parts["docker"])
    source = AppsBerth(image, parts["catalog"], parts["docker"], str(tmp_path_factory.mktemp("berth-box-src")))
    target = AppsBerth(image, parts["catalog"], parts["docker"], str(tmp_path_factory.mktemp("berth-box-dst")))
    source_dir, target_dir = source.data_dir, target.data_dir
    try:
        source.start()
        token = source.api.token
        r = source.request_install(unique("boxdb"), source.manifest(id="io.berth.test.addons", addons=DB_ADDONS))
        assert r.status_code == 202, r.text
        wait(source, r.json()["taskId"])
        app = source.app(r.json()["id"])
        set_value(source, app["fqdn"], "boxed")
        r = source.api.post("/settings/backup_config", json={
            "provider": "filesystem", "backupFolder": folder, "format": "tgz", "retentionSecs": 7 * 86400,
            "intervalSecs": 86400})
        assert r.status_code == 200, r.text
        task = wait(source, source.api.post("/backups/create").json()["taskId"])
        box = task["result"]["backupId"]
        version = [b for b in source.api.get("/backups").json()["backups"] if b["id"] == box][0]["version"]
        source.close()   # the old server, its apps and its database services are gone
        _remove_services(parts["docker"], source_dir)

        target.server = BerthServer(data_dir=target.data_dir, env=target.env).start()
        anon = Api(target.server.api)
        r = anon.post("/cloudron/restore", json={
            "backupConfig": {"provider": "filesystem", "backupFolder": folder, "format": "tgz"},
            "backupId": box, "version": version})
        assert r.status_code == 200, r.text
        deadline = time.time() + SLOW
        while anon.get("/cloudron/status").json()["restore"]["active"]:
            assert time.time() < deadline, "the restore never finished"
            time.sleep(0.5)
        target.api = Api(target.server.api, token)
        target.app_ids.add(app["id"])
        restored = target.wait_app(app["id"], "running again", timeout=SLOW, predicate=lambda a: (
            a["installationState"], a["health"]) == ("installed", "healthy"))
        assert set(state(target, restored["fqdn"]).values()) == {"boxed"}
    finally:
        source.close()
        target.close()
        _remove_services(parts["docker"], source_dir)
        _remove_services(parts["docker"], target_dir)
