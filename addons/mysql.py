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

from addons import databases

ADDON = "mysql"
PORT = 3306
_ROOT = ["-h", "127.0.0.1", "-uroot"]


def _noop(line: str) -> None:
    pass


def name(app_id: str) -> str:
    """The app's database and user name (they are the same, as on Cloudron)."""
    return hashlib.md5(str(app_id).encode(), usedforsecurity=False).hexdigest()[:16]


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _create_sql(db, password, fresh=False):
    drop = f"DROP DATABASE IF EXISTS `{db}`;\n" if fresh else ""
    return (f"{drop}CREATE DATABASE IF NOT EXISTS `{db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;\n"
            f"CREATE USER IF NOT EXISTS '{db}'@'%' IDENTIFIED BY {_literal(password)};\n"
            f"ALTER USER '{db}'@'%' IDENTIFIED BY {_literal(password)};\n"
            f"GRANT ALL PRIVILEGES ON `{db}`.* TO '{db}'@'%';\n")


def _env(db, password, host):
    return databases.env_vars(ADDON, "mysql", PORT, db, db, password, host)


_ENGINE = databases.Engine(
    addon=ADDON, title="MySQL", scheme="mysql", port=PORT, password_var="MYSQL_PWD",
    names=lambda app_id: (name(app_id), name(app_id)),
    sql_argv=["mariadb", *_ROOT, "--batch"],
    create_sql=lambda db, _user, password, fresh: _create_sql(db, password, fresh),
    drop_sql=lambda db, _user: f"DROP DATABASE IF EXISTS `{db}`;\nDROP USER IF EXISTS '{db}'@'%';\n",
    dump_argv=lambda db: ["mariadb-dump", "--single-transaction", "--routines", "--triggers", "--events",
                          "--hex-blob", *_ROOT, db],
    load_argv=lambda db, _user: ["mariadb", *_ROOT, "--batch", db])


def provision(app_id: str, log: Callable[[str], None] = _noop) -> dict[str, str]:
    """Create (or make sure of) the app's database and user; returns Cloudron's CLOUDRON_MYSQL_*
    variables. A second call returns the same credentials."""
    return databases.provision(_ENGINE, app_id, log)


def deprovision(app_id: str, log: Callable[[str], None] = _noop) -> None:
    """Drop the app's database and user and forget its credentials; missing ones are fine."""
    databases.deprovision(_ENGINE, app_id, log)


def dump(app_id: str, path: str, log: Callable[[str], None] = _noop) -> None:
    """Write a consistent dump (mysqldump --single-transaction) of the app's database to `path`."""
    databases.dump(_ENGINE, app_id, path, log)


def load(app_id: str, path: str, log: Callable[[str], None] = _noop) -> None:
    """Replace the app's database with the dump at `path`, replayed into a fresh database."""
    databases.load(_ENGINE, app_id, path, log)
