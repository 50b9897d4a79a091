"""The postgresql addon: one database and one login role per app on the shared PostgreSQL service,
with Cloudron's names (database `db<app id hex>`, role `user<app id hex>`) and variables.

The role owns its database and nothing else; CONNECT on the database is revoked from PUBLIC, so
another app's role cannot even open it. All SQL is sent on psql's standard input (passwords never
appear in an argument list) and every identifier is built from hex digits only.
Dumps are pg_dump's custom format (-Fc), streamed from the service container into a host file;
a load restores into a fresh database as the app's role, so a clone's objects belong to the clone.
"""
from collections.abc import Callable

import containers
from addons import credentials, services
from addons.errors import AddonError

ADDON = "postgresql"
PORT = 5432


def _noop(line: str) -> None:
    pass


def names(app_id: str) -> tuple[str, str]:
    """(database, role) of the app."""
    key = credentials.app_key(app_id)
    return f"db{key}", f"user{key}"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _psql(sql: str, what: str, database: str = "postgres") -> str:
    argv = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres", "-d", database, "-f", "-"]
    return _run(argv, what, stdin=sql.encode())


def _run(argv, what, **kw):
    env = {"PGPASSWORD": services.root_password(ADDON)}
    try:
        code, out = containers.exec_run(services.container(ADDON), argv, env=env, **kw)
    except containers.ContainerError as exc:
        raise AddonError(ADDON, f"cannot {what}: {exc.message}") from None
    if code != 0:
        raise AddonError(ADDON, f"cannot {what}: {argv[0]} exited with {code}: "
                                f"{out.decode(errors='replace').strip()[-500:]}")
    return out.decode(errors="replace")


def _create_sql(database, role, password, fresh=False):
    drop = f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE);\n' if fresh else ""
    return (
        f"SELECT 'CREATE ROLE \"{role}\" LOGIN' WHERE NOT EXISTS "
        f"(SELECT 1 FROM pg_roles WHERE rolname = '{role}')\\gexec\n"
        f'ALTER ROLE "{role}" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {_literal(password)};\n'
        f"{drop}"
        f"SELECT 'CREATE DATABASE \"{database}\" OWNER \"{role}\" ENCODING ''UTF8''' WHERE NOT EXISTS "
        f"(SELECT 1 FROM pg_database WHERE datname = '{database}')\\gexec\n"
        f'REVOKE ALL ON DATABASE "{database}" FROM PUBLIC;\n'
        f'GRANT ALL ON DATABASE "{database}" TO "{role}";\n')


def _env(database, role, password, host):
    return {
        "CLOUDRON_POSTGRESQL_URL": f"postgres://{role}:{password}@{host}/{database}",
        "CLOUDRON_POSTGRESQL_HOST": host,
        "CLOUDRON_POSTGRESQL_PORT": str(PORT),
        "CLOUDRON_POSTGRESQL_USERNAME": role,
        "CLOUDRON_POSTGRESQL_PASSWORD": password,
        "CLOUDRON_POSTGRESQL_DATABASE": database,
    }


def provision(app_id: str, log: Callable[[str], None] = _noop) -> dict[str, str]:
    """Create (or make sure of) the app's database and role; returns Cloudron's CLOUDRON_POSTGRESQL_*
    variables. A second call returns the same credentials."""
    stored = credentials.app_env(app_id, ADDON)
    password = stored["CLOUDRON_POSTGRESQL_PASSWORD"] if stored else credentials.new_password()
    where = services.ensure_service(ADDON, log)
    database, role = names(app_id)
    _psql(_create_sql(database, role, password), f"create the database of app {app_id}")
    env = _env(database, role, password, where["host"])
    if env != stored:
        credentials.put_app_env(app_id, ADDON, env)
    log(f"PostgreSQL database {database} ready")
    return env


def deprovision(app_id: str, log: Callable[[str], None] = _noop) -> None:
    """Drop the app's database and role and forget its credentials; missing ones are fine."""
    database, role = names(app_id)
    if credentials.app_env(app_id, ADDON) is not None or credentials.service(ADDON) is not None:
        services.ensure_service(ADDON, log)
        _psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE);\nDROP ROLE IF EXISTS "{role}";\n',
              f"drop the database of app {app_id}")
        log(f"PostgreSQL database {database} dropped")
    credentials.forget_app_env(app_id, ADDON)


def dump(app_id: str, path: str, log: Callable[[str], None] = _noop) -> None:
    """Write a consistent dump (pg_dump -Fc) of the app's database to the host file `path`."""
    database, _ = names(app_id)
    services.ensure_service(ADDON, log)
    log(f"Dumping PostgreSQL database {database}")
    with credentials.create_private(path) as out:
        _run(["pg_dump", "-Fc", "-h", "127.0.0.1", "-U", "postgres", "-d", database],
             f"dump the database of app {app_id}", stdout_to=out)


def load(app_id: str, path: str, log: Callable[[str], None] = _noop) -> None:
    """Replace the app's database with the dump at `path`: a fresh database, restored as the
    app's role (ownership and grants of the dumped app are not carried over)."""
    env = credentials.app_env(app_id, ADDON) or provision(app_id, log)
    services.ensure_service(ADDON, log)
    database, role = names(app_id)
    _psql(_create_sql(database, role, env["CLOUDRON_POSTGRESQL_PASSWORD"], fresh=True),
          f"recreate the database of app {app_id}")
    log(f"Loading PostgreSQL database {database}")
    with credentials.open_dump(path) as dump_file:
        _run(["pg_restore", "--no-owner", "--no-acl", f"--role={role}", "--exit-on-error",
              "-h", "127.0.0.1", "-U", "postgres", "-d", database], f"load the database of app {app_id}",
             stdin=dump_file)
