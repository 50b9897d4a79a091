"""What the postgresql and mysql addons do alike: one database and one user per app on a shared
service, Cloudron's CLOUDRON_<ADDON>_* variables, and the provision / deprovision / dump / load
steps around the engine's own SQL and client programs, which stay in postgresql.py and mysql.py.

Every client runs inside the service container with the root password in its environment (never
in an argument list); SQL goes on the client's standard input.
"""
from collections.abc import Callable
from dataclasses import dataclass

import containers
from addons import credentials, services
from addons.errors import AddonError

Log = Callable[[str], None]


@dataclass(frozen=True)
class Engine:
    addon: str                                     # "postgresql": the service and the variables' prefix
    title: str                                     # "PostgreSQL", for log lines
    scheme: str                                    # of CLOUDRON_<ADDON>_URL
    port: int
    password_var: str                              # the client's variable for the root password
    names: Callable[[str], tuple[str, str]]        # app id -> (database, user)
    sql_argv: list[str]                            # the client reading SQL on stdin
    create_sql: Callable[[str, str, str, bool], str]   # (database, user, password, fresh)
    drop_sql: Callable[[str, str], str]            # (database, user)
    dump_argv: Callable[[str], list[str]]          # database -> the dump program writing to stdout
    load_argv: Callable[[str, str], list[str]]     # (database, user) -> the program reading a dump


def env_vars(addon: str, scheme: str, port: int, database: str, user: str, password: str,
             host: str) -> dict[str, str]:
    """Cloudron's CLOUDRON_<ADDON>_* variables of an app's database."""
    prefix = f"CLOUDRON_{addon.upper()}_"
    return {
        prefix + "URL": f"{scheme}://{user}:{password}@{host}/{database}",
        prefix + "HOST": host,
        prefix + "PORT": str(port),
        prefix + "USERNAME": user,
        prefix + "PASSWORD": password,
        prefix + "DATABASE": database,
    }


def run(engine: Engine, argv: list[str], what: str, **kw: object) -> str:
    """Run a client in the service container as root; its output. AddonError when it fails."""
    env = {engine.password_var: services.root_password(engine.addon)}
    try:
        code, out = containers.exec_run(services.container(engine.addon), argv, env=env, **kw)
    except containers.ContainerError as exc:
        raise AddonError(engine.addon, f"cannot {what}: {exc.message}") from None
    if code != 0:
        raise AddonError(engine.addon, f"cannot {what}: {argv[0]} exited with {code}: "
                                       f"{out.decode(errors='replace').strip()[-500:]}")
    return out.decode(errors="replace")


def sql(engine: Engine, text: str, what: str) -> str:
    return run(engine, engine.sql_argv, what, stdin=text.encode())


def provision(engine: Engine, app_id: str, log: Log) -> dict[str, str]:
    """Create (or make sure of) the app's database and user; returns its variables. A second
    call returns the same credentials."""
    stored = credentials.app_env(app_id, engine.addon)
    password_key = f"CLOUDRON_{engine.addon.upper()}_PASSWORD"
    password = stored[password_key] if stored else credentials.new_password()
    where = services.ensure_service(engine.addon, log)
    database, user = engine.names(app_id)
    sql(engine, engine.create_sql(database, user, password, False), f"create the database of app {app_id}")
    env = env_vars(engine.addon, engine.scheme, engine.port, database, user, password, where["host"])
    if env != stored:
        credentials.put_app_env(app_id, engine.addon, env)
    log(f"{engine.title} database {database} ready")
    return env


def deprovision(engine: Engine, app_id: str, log: Log) -> None:
    """Drop the app's database and user and forget its credentials; missing ones are fine."""
    database, user = engine.names(app_id)
    if credentials.app_env(app_id, engine.addon) is not None or credentials.service(engine.addon) is not None:
        services.ensure_service(engine.addon, log)
        sql(engine, engine.drop_sql(database, user), f"drop the database of app {app_id}")
        log(f"{engine.title} database {database} dropped")
    credentials.forget_app_env(app_id, engine.addon)


def dump(engine: Engine, app_id: str, path: str, log: Log) -> None:
    """Write the dump program's output for the app's database to the host file `path` (0600)."""
    database, _ = engine.names(app_id)
    services.ensure_service(engine.addon, log)
    log(f"Dumping {engine.title} database {database}")
    with credentials.create_private(path) as out:
        run(engine, engine.dump_argv(database), f"dump the database of app {app_id}", stdout_to=out)


def load(engine: Engine, app_id: str, path: str, log: Log) -> None:
    """Replace the app's database with the dump at `path`, loaded into a fresh database."""
    env = credentials.app_env(app_id, engine.addon) or provision(engine, app_id, log)
    services.ensure_service(engine.addon, log)
    database, user = engine.names(app_id)
    password = env[f"CLOUDRON_{engine.addon.upper()}_PASSWORD"]
    sql(engine, engine.create_sql(database, user, password, True), f"recreate the database of app {app_id}")
    log(f"Loading {engine.title} database {database}")
    with credentials.open_dump(path) as dump_file:
        run(engine, engine.load_argv(database, user), f"load the database of app {app_id}", stdin=dump_file)
