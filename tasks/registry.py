"""Stable names for task bodies and schedule actions.

The database stores these names (`tasks.body`, `schedules.action`), never module paths, so a
module can move without breaking queued tasks or installed schedules: only this table changes.
The engine imports the target lazily, by string, so `tasks` imports no area package.

Names starting with `test.` resolve to the module named by BERTH_TEST_TASK_BODIES (the test
suite's bodies) and to nothing when it is unset, as in production.
"""
import importlib
from collections.abc import Callable
from typing import Any

from core import config

# stable name -> "package.module:function"
BODIES = {
    "app.install": "apps.task_bodies:install",
    "app.configure": "apps.task_bodies:configure",
    "app.update": "apps.task_bodies:update",
    "app.start": "apps.task_bodies:start",
    "app.stop": "apps.task_bodies:stop",
    "app.restart": "apps.task_bodies:restart",
    "app.uninstall": "apps.task_bodies:uninstall",
    "app.data_dir": "apps.data_folder:move",
    "backup.full": "backups.task_bodies:full_backup",
    "backup.app": "backups.task_bodies:app_backup",
    "backup.cleanup": "backups.task_bodies:cleanup",
    "backup.restore_app": "backups.task_bodies:restore_app",
    "backup.clone_app": "backups.task_bodies:clone_app",
    "backup.import_app": "backups.app_import:import_app",
    "backup.restore_cloudron": "backups.task_bodies:restore_cloudron",
    "dns.sync": "domains.dns_records:sync_all",
    "certs.renew": "domains.task_bodies:renew",
    "certs.refresh": "domains.task_bodies:refresh",
    "dashboard.prepare": "domains.task_bodies:prepare_dashboard",
    "mail.change_location": "mail.server_settings:change_location",
    "ldap.sync": "accounts.external_ldap:sync",
    "platform.update": "platform_update.task_bodies:update",
    "deploy.build": "deployments.task_bodies:build",
}

# stable name -> "package.module:function", called as action(fire_time=..., **args)
ACTIONS = {
    "apps.health_check": "apps.health:check_all",
    "apps.autoupdate": "apps.updates:check_all",
    "box.autoupdate": "platform_update.updater:scheduled_update",
    "backup.scheduled": "backups.scheduled:scheduled_backup",
    "backup.scheduled_cleanup": "backups.scheduled:scheduled_cleanup",
    "backup.sweep": "backups.scheduled:sweep",
    "certs.renewal_check": "domains.task_bodies:renewal_check",
    "dns.dynamic_check": "domains.dynamic_dns:check",
    "addons.scheduler_run": "addons.scheduler:run",
    "system.collect_usage": "system_monitor.collector:collect",
    "deployments.image_hygiene": "deployments.hygiene:run",
}


def _target(table, name):
    if name.startswith("test.") and config.get().test_task_bodies:
        return f"{config.get().test_task_bodies}:{name[5:]}"
    return table.get(name)


def _resolve(table, kind, name):
    target = _target(table, name)
    if target is None:
        raise LookupError(f"unknown {kind} {name!r}")
    module, _, attr = target.partition(":")
    fn = getattr(importlib.import_module(module), attr, None)
    if not callable(fn):
        raise LookupError(f"{kind} {name!r} ({target}) is not a function")
    return fn


def body(name: str) -> Callable[..., Any]:
    """The function behind task body `name`."""
    return _resolve(BODIES, "task body", name)


def action(name: str) -> Callable[..., Any]:
    """The function behind schedule action `name`."""
    return _resolve(ACTIONS, "schedule action", name)
