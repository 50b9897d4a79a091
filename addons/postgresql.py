"""The postgresql addon: one database and one login role per app on the shared PostgreSQL service,
with Cloudron's names (database `db<app id hex>`, role `user<app id hex>`) and variables.

The role owns its database and nothing else; CONNECT on the database is revoked from PUBLIC, so
another app's role cannot even open it. All SQL is sent on psql's standard input (passwords never
appear in an argument list) and every identifier is built from hex digits only.
Dumps are pg_dump's custom format (-Fc), streamed from the service container into a host file;
a load restores into a fresh database as the app's role, so a clone's objects belong to the clone.
"""
from collections.abc import Callable

from addons import credentials, databases

ADDON = "postgresql"
PORT = 5432
_ROOT = ["-h", "127.0.0.1", "-U", "postgres"]


def _noop(line: str) -> None:
    pass


def names(app_id: str) -> tuple[str, str]:
    """(database, role) of the app."""
    key = credentials.app_key(app_id)
    return f"db{key}", f"user{key}"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


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


def _drop_sql(database, role):
    return f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE);\nDROP ROLE IF EXISTS "{role}";\n'


def _env(database, role, password, host):
    return databases.env_vars(ADDON, "postgres", PORT, database, role, password, host)


_ENGINE = databases.Engine(
    addon=ADDON, title="PostgreSQL", scheme="postgres", port=PORT, password_var="PGPASSWORD", names=names,
    sql_argv=["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", *_ROOT, "-d", "postgres", "-f", "-"],
    create_sql=_create_sql, drop_sql=_drop_sql,
    dump_argv=lambda database: ["pg_dump", "-Fc", *_ROOT, "-d", database],
    # Restored as the app's role: ownership and grants of the dumped app are not carried over.
    load_argv=lambda database, role: ["pg_restore", "--no-owner", "--no-acl", f"--role={role}", "--exit-on-error",
                                      *_ROOT, "-d", database])


def provision(app_id: str, log: Callable[[str], None] = _noop) -> dict[str, str]:
    """Create (or make sure of) the app's database and role; returns Cloudron's CLOUDRON_POSTGRESQL_*
    variables. A second call returns the same credentials."""
    return databases.provision(_ENGINE, app_id, log)


def deprovision(app_id: str, log: Callable[[str], None] = _noop) -> None:
    """Drop the app's database and role and forget its credentials; missing ones are fine."""
    databases.deprovision(_ENGINE, app_id, log)


def dump(app_id: str, path: str, log: Callable[[str], None] = _noop) -> None:
    """Write a consistent dump (pg_dump -Fc) of the app's database to the host file `path`."""
    databases.dump(_ENGINE, app_id, path, log)


def load(app_id: str, path: str, log: Callable[[str], None] = _noop) -> None:
    """Replace the app's database with the dump at `path`: a fresh database, restored as the
    app's role (ownership and grants of the dumped app are not carried over)."""
    databases.load(_ENGINE, app_id, path, log)
