"""The postgresql, mysql and redis addons against real servers (the images built from Debian
packages): provision, reach the database from a container on the app network with the injected
credentials, keep other apps out, dump, load, deprovision."""
import os
import uuid

import pytest

import containers
from addons import credentials, images, mysql, postgresql, redis, services
from core import data_paths

PG_KEYS = {f"CLOUDRON_POSTGRESQL_{k}" for k in ("URL", "HOST", "PORT", "USERNAME", "PASSWORD", "DATABASE")}
MYSQL_KEYS = {f"CLOUDRON_MYSQL_{k}" for k in ("URL", "HOST", "PORT", "USERNAME", "PASSWORD", "DATABASE")}
REDIS_KEYS = {f"CLOUDRON_REDIS_{k}" for k in ("URL", "HOST", "PORT", "PASSWORD")}


class Pg:
    addon, module, keys = "postgresql", postgresql, PG_KEYS

    def query(self, run_client, env, sql, database=None):
        url = env["CLOUDRON_POSTGRESQL_URL"]
        if database:
            url = url.rsplit("/", 1)[0] + "/" + database
        return run_client(images.ensure_image("postgresql"), ["psql", url, "-X", "-v", "ON_ERROR_STOP=1", "-Atc", sql])

    def root_query(self, sql):
        code, out = containers.exec_run(services.container("postgresql"),
                                        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc", sql],
                                        env={"PGPASSWORD": services.root_password("postgresql")})
        assert code == 0, out
        return out.decode().strip()

    def gone(self, env):
        user, db = env["CLOUDRON_POSTGRESQL_USERNAME"], env["CLOUDRON_POSTGRESQL_DATABASE"]
        return (self.root_query(f"SELECT count(*) FROM pg_roles WHERE rolname = '{user}'") == "0"
                and self.root_query(f"SELECT count(*) FROM pg_database WHERE datname = '{db}'") == "0")


class My:
    addon, module, keys = "mysql", mysql, MYSQL_KEYS

    def query(self, run_client, env, sql, database=None):
        return run_client(images.ensure_image("mysql"),
                          ["mariadb", "-h", env["CLOUDRON_MYSQL_HOST"], "-P", env["CLOUDRON_MYSQL_PORT"],
                           "-u", env["CLOUDRON_MYSQL_USERNAME"], "-N", "-B",
                           database or env["CLOUDRON_MYSQL_DATABASE"], "-e", sql],
                          env={"MYSQL_PWD": env["CLOUDRON_MYSQL_PASSWORD"]})

    def gone(self, env):
        name = env["CLOUDRON_MYSQL_USERNAME"]
        code, out = containers.exec_run(services.container("mysql"), [
            "mariadb", "-h", "127.0.0.1", "-uroot", "-N", "-e",
            f"SELECT (SELECT count(*) FROM mysql.user WHERE user = '{name}') + "
            f"(SELECT count(*) FROM information_schema.schemata WHERE schema_name = '{name}')"],
            env={"MYSQL_PWD": services.root_password("mysql")})
        assert code == 0, out
        return out.decode().strip() == "0"


@pytest.mark.parametrize("kind", [Pg(), My()], ids=["postgresql", "mysql"])
def test_database_addon_provision_isolate_dump_load_deprovision(berth_env, run_client, kind, tmp_path):
    app_a, app_b = str(uuid.uuid4()), str(uuid.uuid4())
    env_a = kind.module.provision(app_a)
    assert set(env_a) == kind.keys
    assert kind.module.provision(app_a) == env_a                    # idempotent: same credentials
    env_b = kind.module.provision(app_b)
    assert env_b[f"CLOUDRON_{kind.addon.upper()}_PASSWORD"] != env_a[f"CLOUDRON_{kind.addon.upper()}_PASSWORD"]

    code, out = kind.query(run_client, env_a, "CREATE TABLE notes (v TEXT); INSERT INTO notes VALUES ('old')")
    assert code == 0, out
    assert kind.query(run_client, env_a, "SELECT v FROM notes") == (0, "old")

    # app B's credentials do not open app A's database
    database_a = env_a[f"CLOUDRON_{kind.addon.upper()}_DATABASE"]
    code, out = kind.query(run_client, env_b, "SELECT v FROM notes", database=database_a)
    assert code != 0 and ("denied" in out.lower()), out

    dump = tmp_path / "a.dump"
    kind.module.dump(app_a, str(dump))
    assert dump.stat().st_size > 0 and (dump.stat().st_mode & 0o077) == 0

    assert kind.query(run_client, env_a, "UPDATE notes SET v = 'new'")[0] == 0
    assert kind.query(run_client, env_a, "SELECT v FROM notes") == (0, "new")
    kind.module.load(app_a, str(dump))
    assert kind.query(run_client, env_a, "SELECT v FROM notes") == (0, "old")
    assert kind.module.provision(app_a) == env_a                    # credentials survive a load

    # a clone: A's dump loaded into B's database is B's, readable and writable with B's credentials
    kind.module.load(app_b, str(dump))
    assert kind.query(run_client, env_b, "UPDATE notes SET v = 'clone'")[0] == 0
    assert kind.query(run_client, env_b, "SELECT v FROM notes") == (0, "clone")
    assert kind.query(run_client, env_a, "SELECT v FROM notes") == (0, "old")

    kind.module.deprovision(app_a)
    assert kind.gone(env_a)
    assert credentials.app_env(app_a, kind.addon) is None
    assert kind.query(run_client, env_a, "SELECT 1")[0] != 0
    kind.module.deprovision(app_a)                                  # missing is fine
    kind.module.deprovision(app_b)
    assert kind.gone(env_b)


def test_redis_addon_one_server_per_app_with_its_password(berth_env, run_client, tmp_path):
    app_a, app_b = str(uuid.uuid4()), str(uuid.uuid4())
    env_a = redis.provision(app_a)
    assert set(env_a) == REDIS_KEYS
    assert env_a["CLOUDRON_REDIS_HOST"] == f"redis-{app_a}" and env_a["CLOUDRON_REDIS_PORT"] == "6379"
    assert redis.provision(app_a) == env_a
    env_b = redis.provision(app_b)
    image = images.ensure_image("redis")

    def cli(env, *argv, password=None):
        return run_client(image, ["redis-cli", "-h", env["CLOUDRON_REDIS_HOST"], *argv],
                          env={"REDISCLI_AUTH": password or env["CLOUDRON_REDIS_PASSWORD"]})

    # Cloudron's URL (user "redisuser") and the bare password both work
    url = env_a["CLOUDRON_REDIS_URL"]
    assert run_client(image, ["redis-cli", "--no-auth-warning", "-u", url, "SET", "k", "old"]) == (0, "OK")
    assert cli(env_a, "GET", "k") == (0, "old")
    code, out = cli(env_a, "GET", "k", password=env_b["CLOUDRON_REDIS_PASSWORD"])
    assert "WRONGPASS" in out or "NOAUTH" in out, out
    assert cli(env_b, "GET", "k") == (0, "")                        # B's own Redis is a different server

    dump = tmp_path / "a.rdb"
    redis.dump(app_a, str(dump))
    assert dump.read_bytes().startswith(b"REDIS")
    assert cli(env_a, "SET", "k", "new") == (0, "OK")
    redis.load(app_a, str(dump))
    assert cli(env_a, "GET", "k") == (0, "old")

    folder = data_paths.addon_service_data(f"redis-{app_a}")
    assert os.path.isdir(folder)
    redis.deprovision(app_a)
    assert containers.service_inspect(f"redis-{app_a}") is None
    assert not os.path.exists(folder)
    assert f"redis-{app_a}" not in services.list_names()
    assert f"redis-{app_b}" in services.list_names()
    redis.deprovision(app_a)
    redis.deprovision(app_b)
