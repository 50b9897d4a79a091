"""Apps: what may be installed where, and the lifecycle requests that become app tasks.

Request-time work is validation and bookkeeping only: every change that touches Docker or
nginx runs as a task of type `app` (bodies in apps/task_bodies.py). Tasks for one app run one at
a time in order (the task engine serialises them by app id); a request made while another task
runs on the app is queued and shows as `pending`. The app row's `installationState` says what
was asked last, `taskId` which task does it.

    __init__      lookups, who sees which app, queue_task
    lifecycle.py  install, configure, start/stop/..., update, uninstall
    validation.py locations, aliases, ports, env, memory, access restrictions
    icons.py      custom icons
    health.py     the recurring health check; reconcile.py what it repairs after a restart
"""
from collections.abc import Iterable

import accounts
import domains
import eventlog
import tasks
from core import data_paths
from core.errors import NotFound
from models import utcnow
from models.apps import App

ADMIN_ROLES = ("owner", "admin")


# ---- lookups ----------------------------------------------------------------------------------

def get_app(app_id: str) -> App:
    return App.get_or_raise(NotFound("No such app"), App.id == app_id)


def list_apps() -> list[App]:
    return list(App.select().order_by(App.creation_time))


def fqdn(app: App) -> str:
    try:
        return domains.fqdn(app.location, app.domain)
    except NotFound:  # the domain row is gone (should not happen: deletion is refused)
        return f"{app.location}.{app.domain}" if app.location else app.domain


def data_dir(app_id: str) -> str:
    """The host folder bound at /app/data: the app's custom `dataDir` (configure/data_dir) or
    <data>/apps/<id>/data."""
    custom = App.select(App.data_dir).where(App.id == app_id).scalar()
    return custom or data_paths.app_data(app_id)


# ---- who sees what ----------------------------------------------------------------------------

def may_access(app: App, user_id: str, role: str, group_ids: Iterable[str]) -> bool:
    """May this user use (see) the app? Admins always; otherwise per accessRestriction."""
    if role in ADMIN_ROLES or not app.access_restriction:
        return True
    allowed = app.access_restriction
    return user_id in (allowed.get("users") or []) or bool(set(allowed.get("groups") or []) & set(group_ids))


def sees_everything(actor: eventlog.Actor) -> bool:
    """Owners and admins see every app, with every field."""
    return actor.role in ADMIN_ROLES


def _access_rule(actor):
    """`app -> bool` for the actor: one group lookup, then may_access per app."""
    if sees_everything(actor):
        return lambda app: True
    me = accounts.with_group_ids([accounts.get_user(actor.user_id)])[0]
    return lambda app: may_access(app, me.id, actor.role, me.group_ids)


def visible_apps(actor: eventlog.Actor) -> list[App]:
    """The apps `actor` may see (GET /apps): all for owners and admins, others per accessRestriction."""
    allowed = _access_rule(actor)
    return [app for app in list_apps() if allowed(app)]


def get_visible_app(actor: eventlog.Actor, app_id: str) -> App:
    """The app, if `actor` may see it under the rule of visible_apps; NotFound otherwise, as for an
    app that does not exist (a restricted app's existence is not confirmed either)."""
    app = get_app(app_id)
    if not _access_rule(actor)(app):
        raise NotFound("No such app")
    return app


# ---- tasks ------------------------------------------------------------------------------------

def queue_task(app: "App | str", state: str, body: str, args: dict | None = None, *,
               actor: eventlog.Actor | None = None, action: str | None = None, event: dict | None = None,
               locks: Iterable[str] = (), **fields: object) -> int:
    """Queue the app task `body` (a tasks.registry name: "app.configure", "backup.restore_app", ...)
    with `args` plus app_id, then record on the app row `installation_state=state`, the task id
    and any other `fields` (columns), and, when `action` is given, the event `action` by `actor`
    (default: Berth itself) with appId, taskId and `event`. Returns the task id.

    The task engine runs the tasks of one app in order; apps.task_steps.run_app_task only takes
    the row over from an older task, so the state recorded here stays until this task runs."""
    app_id = app if isinstance(app, str) else app.id
    task_id = tasks.start("app", body, {"app_id": app_id, **(args or {})}, app_id=app_id, locks=tuple(locks))
    App.update(installation_state=state, task_id=task_id, ts=utcnow(), **fields).where(App.id == app_id).execute()
    if action:
        eventlog.record(action, actor or eventlog.SYSTEM, appId=app_id, taskId=str(task_id), **(event or {}))
    return task_id


# The operations, so that callers keep using `apps.install(...)`, `apps.check_location(...)`.
from apps.icons import icon_path, read_icon, set_icon  # noqa: E402
from apps.lifecycle import (  # noqa: E402
    configure,
    delete_data,
    install,
    repair,
    restart,
    set_fields,
    start,
    stop,
    uninstall,
    update,
)
from apps.validation import check_location, check_location_and_domain, check_port_bindings  # noqa: E402

__all__ = [
    "ADMIN_ROLES", "check_location", "check_location_and_domain", "check_port_bindings", "configure",
    "data_dir", "delete_data", "fqdn", "get_app", "get_visible_app", "icon_path", "install", "list_apps",
    "may_access", "queue_task", "read_icon", "repair", "restart", "sees_everything", "set_fields", "set_icon",
    "start", "stop", "uninstall", "update", "visible_apps",
]
