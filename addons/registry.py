"""The addons Berth can give an app, by the names Cloudron manifests use: the ONLY place that
knows which addons exist. Everything else (manifest checks, the app task steps, backups) asks
this table, so adding an addon is one handler and one line here.

Every handler has the same hooks, each optional (a missing hook does nothing):

    available() -> str | None            why Berth cannot provide it here (None: it can)
    check(options, field) -> None        refuse bad manifest options (BadRequest naming `field`)
    setup(app, options, log) -> None     create what the app needs; idempotent (configure re-runs it)
    env(app, options, log) -> dict       the CLOUDRON_* variables it gives the app
    mounts(app, options) -> list         extra bind mounts: (source, target, read_only) or Mount
    teardown(app, options, log) -> None  remove what setup made (uninstall, rollback, update)
    backup(app, options, folder, log)    write a consistent dump into `folder` (Berth's, not the app's)
    restore(app, options, folder, log)   load that dump into what setup just made (fresh)

`app` is the models.apps.App row; `options` the manifest's object for the addon.
"""
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from addons import localstorage, mail_addons, scheduler, tls
from addons.errors import AddonError
from core.errors import BadRequest
from models.apps import App

Log = Callable[[str], Any]


@dataclass(frozen=True)
class Mount:
    """A host path bound into the app's container."""
    source: str
    target: str
    read_only: bool = True


class Database:
    """A database addon served by helper A's modules (addons.postgresql, .mysql, .redis): one
    shared server (or one Redis per app), one database and user per app. Loaded lazily, so a
    server without the module answers "not available" instead of failing to start."""

    def __init__(self, module: str, dump_file: str) -> None:
        self.module = module
        self.dump_file = dump_file          # Cloudron's names: postgresqldump, mysqldump, dump.rdb

    def _impl(self) -> ModuleType:
        return importlib.import_module(f"addons.{self.module}")

    def available(self) -> str | None:
        try:
            impl = self._impl()
        except ImportError:
            return "not available on this server"
        missing = [f for f in ("provision", "deprovision", "dump", "load") if not callable(getattr(impl, f, None))]
        return "not available on this server" if missing else None

    def setup(self, app: App, options: dict, log: Log) -> None:
        self._impl().provision(app.id, log)

    def env(self, app: App, options: dict, log: Log) -> dict[str, str]:
        # provision is idempotent: for an existing database it only hands back the credentials.
        return dict(self._impl().provision(app.id, log))

    def teardown(self, app: App, options: dict, log: Log) -> None:
        self._impl().deprovision(app.id, log)

    def backup(self, app: App, options: dict, folder: str, log: Log) -> None:
        self._impl().dump(app.id, f"{folder}/{self.dump_file}", log)

    def restore(self, app: App, options: dict, folder: str, log: Log) -> None:
        path = f"{folder}/{self.dump_file}"
        self._impl().load(app.id, path, log)


# name -> handler. Order matters: setup runs top to bottom, teardown bottom to top.
ADDONS: dict[str, object] = {
    "localstorage": localstorage,
    "postgresql": Database("postgresql", "postgresqldump"),
    "mysql": Database("mysql", "mysqldump"),
    "redis": Database("redis", "dump.rdb"),
    "sendmail": mail_addons.SENDMAIL,
    "recvmail": mail_addons.RECVMAIL,
    "tls": tls,
    "scheduler": scheduler,
}


def _hook(handler: object, name: str) -> Callable[..., Any] | None:
    fn = getattr(handler, name, None)
    return fn if callable(fn) else None


def declared(manifest: dict | None) -> list[tuple[str, object, dict]]:
    """(name, handler, options) of the manifest's addons Berth knows, in the table's order."""
    wanted = (manifest or {}).get("addons") or {}
    return [(name, handler, wanted[name] or {}) for name, handler in ADDONS.items() if name in wanted]


def check_manifest(addons: object, field: str = "manifest.addons") -> None:
    """Refuse (400, naming `<field>.<name>`) an addon Berth does not have or cannot provide here,
    before anything is created; the handlers check their own options."""
    if addons is None:
        return
    if not isinstance(addons, dict):
        raise BadRequest("must be an object of addon name -> options", field)
    for name, options in addons.items():
        where = f"{field}.{name}"
        if name not in ADDONS:
            raise BadRequest(f"addon '{name}' is not supported by this server", where)
        if options is not None and not isinstance(options, dict):
            raise BadRequest("must be an object", where)
        handler = ADDONS[name]
        available = _hook(handler, "available")
        why = available() if available else None
        if why:
            raise BadRequest(f"addon '{name}' is {why}", where)
        check = _hook(handler, "check")
        if check:
            check(options or {}, where)


def _failure(name: str, exc: Exception) -> AddonError:
    """One AddonError naming the addon, for the app's `error` (an AddonError already does)."""
    if isinstance(exc, AddonError):
        return exc
    failure = AddonError(name, getattr(exc, "message", None) or str(exc) or type(exc).__name__)
    failure.__cause__ = exc
    return failure


def setup_app(app: App, log: Log, rollback: bool = False) -> None:
    """Set up every addon of the app's manifest. With `rollback` (a fresh install, where all of it
    is new), a failure tears down what this call set up before raising, so nothing is left behind."""
    done = []
    for name, handler, options in declared(app.manifest):
        setup = _hook(handler, "setup")
        try:
            if setup:
                log(f"Setting up addon {name}")
                setup(app, options, log)
            done.append((name, handler, options))
        except Exception as exc:
            if rollback:
                done.append((name, handler, options))   # a half-made one goes too
                try:
                    _teardown(app, list(reversed(done)), log)
                except Exception as undo:  # noqa: BLE001 - the provisioning failure is the reason
                    log(f"rolling back the addons failed too: {undo}")
            raise _failure(name, exc)  # noqa: B904 - the cause is set


def env_of(app: App, log: Log) -> dict[str, str]:
    """The variables every addon of the app gives it, merged."""
    env: dict[str, str] = {}
    for name, handler, options in declared(app.manifest):
        hook = _hook(handler, "env")
        if hook:
            try:
                env.update(hook(app, options, log))
            except Exception as exc:
                raise _failure(name, exc)  # noqa: B904 - the cause is set
    return env


def needs_network(manifest: dict | None) -> bool:
    """Whether the app must be on the app network: its database services are reached there."""
    return any(isinstance(handler, Database) for _, handler, _ in declared(manifest))


def mounts_of(app: App) -> list[Mount]:
    out: list[Mount] = []
    for _name, handler, options in declared(app.manifest):
        hook = _hook(handler, "mounts")
        if hook:
            out.extend(m if isinstance(m, Mount) else Mount(*m) for m in hook(app, options))
    return out


def _teardown(app, entries, log):
    """Tear down `entries` (name, handler, options), every one tried: the first failure is raised
    at the end, so one stuck addon does not leave the others behind."""
    first = None
    for name, handler, options in entries:
        hook = _hook(handler, "teardown")
        if not hook:
            continue
        try:
            log(f"Removing addon {name}")
            hook(app, options, log)
        except Exception as exc:  # noqa: BLE001 - see the docstring
            log(f"removing addon {name} failed: {exc}")
            first = first or _failure(name, exc)
    if first is not None:
        raise first


def teardown_app(app: App, log: Log, manifest: dict | None = None, keep: dict | None = None) -> None:
    """Remove the addons of `manifest` (default: the app's) except those `keep` (a newer
    manifest) still declares; reverse order."""
    still = set(((keep or {}).get("addons") or {})) if keep is not None else set()
    entries = [e for e in declared(manifest if manifest is not None else app.manifest) if e[0] not in still]
    _teardown(app, list(reversed(entries)), log)


def dumps(manifest: dict | None) -> list[str]:
    """The addons of `manifest` whose data lives outside the data folder and goes into backups."""
    return [name for name, handler, _ in declared(manifest) if _hook(handler, "backup")]


def backup_app(app: App, folder: str, log: Log) -> list[str]:
    """Dump every addon with data into `folder`; returns their names."""
    written = []
    for name, handler, options in declared(app.manifest):
        hook = _hook(handler, "backup")
        if hook:
            log(f"Dumping addon {name}")
            try:
                hook(app, options, folder, log)
            except Exception as exc:
                raise _failure(name, exc)  # noqa: B904 - the cause is set
            written.append(name)
    return written


def restore_app(app: App, folder: str, log: Log, names: list[str] | None = None) -> None:
    """Give the app fresh addons and load the dumps in `folder` (those named in `names`, default
    all the manifest's): what a restore or a clone does before the container starts. The old
    databases of a restored app are dropped first, so nothing of the present survives."""
    for name, handler, options in declared(app.manifest):
        hook = _hook(handler, "restore")
        if not hook or (names is not None and name not in names):
            continue
        log(f"Restoring addon {name}")
        try:
            teardown, setup = _hook(handler, "teardown"), _hook(handler, "setup")
            if teardown:
                teardown(app, options, log)
            if setup:
                setup(app, options, log)
            hook(app, options, folder, log)
        except Exception as exc:
            raise _failure(name, exc)  # noqa: B904 - the cause is set
