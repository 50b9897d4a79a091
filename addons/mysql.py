"""The mysql addon: one database and one user per app on the shared MySQL (MariaDB) service, named
as Cloudron names them (the first 16 hex digits of md5(app id), MySQL's user name limit, for
both), with Cloudron's CLOUDRON_MYSQL_* variables.

The user is granted everything on its own database and nothing else. SQL goes to the client's
standard input (passwords never appear in an argument list); identifiers are hex digits only.
Dumps are mysqldump --single-transaction (consistent for InnoDB without locking the app out),
streamed into a host file; a load replays one into a freshly created database.
"""
import hashlib
from collections.abc import Callable

import containers
from addons import credentials, services
from addons.errors import AddonError

ADDON = "mysql"
PORT = 3306


def _noop(line: str) -> None:
    pass


def name(app_id: str) -> str:
    """The app's database and user name (they are the same, as on Cloudron)."""
    return hashlib.md5(str(app_id).encode(), usedforsecurity=False).hexdigest()[:16]


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _run(argv, what, **kw):
    env = {"MYSQL_PWD": services.root_password(ADDON)}
    try:
        code, out = containers.exec_run(services.container(ADDON), argv, env=env, **kw)
    except containers.ContainerError as exc:
        raise AddonError(ADDON, f"cannot {what}: {exc.message}") from None
    if code != 0:
        raise AddonError(ADDON, f"cannot {what}: {argv[0]} exited with {code}: "
                                f"{out.decode(errors='replace').strip()[-500:]}")
    return out.decode(errors="replace")


def _sql(sql: str, what: str) -> str:
    return _run(["mariadb", "-h", "127.0.0.1", "-uroot", "--batch"], what, stdin=sql.encode())


def _create_sql(db, password, fresh=False):
    drop = f"DROP DATABASE IF EXISTS `{db}`;\n" if fresh else ""
    return (f"{drop}CREATE DATABASE IF NOT EXISTS `{db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;\n"
            f"CREATE USER IF NOT EXISTS '{db}'@'%' IDENTIFIED BY {_literal(password)};\n"
            f"ALTER USER '{db}'@'%' IDENTIFIED BY {_literal(password)};\n"
            f"GRANT ALL PRIVILEGES ON `{db}`.* TO '{db}'@'%';\n")


def _env(db, password, host):
    return {
        "CLOUDRON_MYSQL_URL": f"mysql://{db}:{password}@{host}/{db}",
        "CLOUDRON_MYSQL_HOST": host,
        "CLOUDRON_MYSQL_PORT": str(PORT),
        "CLOUDRON_MYSQL_USERNAME": db,
        "CLOUDRON_MYSQL_PASSWORD": password,
        "CLOUDRON_MYSQL_DATABASE": db,
    }


def provision(app_id: str, log: Callable[[str], None] = _noop) -> dict[str, str]:
    """Create (or make sure of) the app's database and user; returns Cloudron's CLOUDRON_MYSQL_*
    variables. A second call returns the same credentials."""
    stored = credentials.app_env(app_id, ADDON)
    password = stored["CLOUDRON_MYSQL_PASSWORD"] if stored else credentials.new_password()
    where = services.ensure_service(ADDON, log)
    db = name(app_id)
    _sql(_create_sql(db, password), f"create the database of app {app_id}")
    env = _env(db, password, where["host"])
    if env != stored:
        credentials.put_app_env(app_id, ADDON, env)
    log(f"MySQL database {db} ready")
    return env


def deprovision(app_id: str, log: Callable[[str], None] = _noop) -> None:
    """Drop the app's database and user and forget its credentials; missing ones are fine."""
    db = name(app_id)
    if credentials.app_env(app_id, ADDON) is not None or credentials.service(ADDON) is not None:
        services.ensure_service(ADDON, log)
        _sql(f"DROP DATABASE IF EXISTS `{db}`;\nDROP USER IF EXISTS '{db}'@'%';\n",
             f"drop the database of app {app_id}")
        log(f"MySQL database {db} dropped")
    credentials.forget_app_env(app_id, ADDON)


def dump(app_id: str, path: str, log: Callable[[str], None] = _noop) -> None:
    """Write a consistent dump (mysqldump --single-transaction) of the app's database to `path`."""
    db = name(app_id)
    services.ensure_service(ADDON, log)
    log(f"Dumping MySQL database {db}")
    with credentials.create_private(path) as out:
        _run(["mariadb-dump", "--single-transaction", "--routines", "--triggers", "--events", "--hex-blob",
              "-h", "127.0.0.1", "-uroot", db], f"dump the database of app {app_id}", stdout_to=out)


def load(app_id: str, path: str, log: Callable[[str], None] = _noop) -> None:
    """Replace the app's database with the dump at `path`, replayed into a fresh database."""
    env = credentials.app_env(app_id, ADDON) or provision(app_id, log)
    services.ensure_service(ADDON, log)
    db = name(app_id)
    _sql(_create_sql(db, env["CLOUDRON_MYSQL_PASSWORD"], fresh=True), f"recreate the database of app {app_id}")
    log(f"Loading MySQL database {db}")
    with credentials.open_dump(path) as dump_file:
        _run(["mariadb", "-h", "127.0.0.1", "-uroot", "--batch", db], f"load the database of app {app_id}",
             stdin=dump_file)
