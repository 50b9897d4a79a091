"""Putting the world back in line with the app rows, after a crash or a restart (run by
apps.health.check_all):

- `reconcile_states` ends `pending_*` states whose task is over without having said so (the task
  process was killed: server SIGKILL, timeout): the app goes to `error` naming the task's error,
  so repair can take over; an app is never left half-installed and silent;
- `reconcile_runtime` (once per process) mounts again the network shares apps use (after a
  reboot) and restarts those apps, gives installed apps whose container is missing a configure
  task that re-creates it, reports containers labelled as Berth's that belong to no app, gives
  nginx the stored block list and rewrites every vhost from the database.

One app row that cannot be turned into a vhost (a name nginx must not get, a domain that is
gone) is reported and keeps the vhost it has; it never stops the reconciliation of the others.
"""
import logging
from collections.abc import Iterable

import apps
import containers
import domains
import eventlog
import platform_settings.blocklist
import reverse_proxy
import volumes
from apps import task_steps
from core.errors import ApiError, Conflict
from models import utcnow
from models.apps import App
from models.tasks import Task

log = logging.getLogger("berth.apps")


def reconcile_states() -> None:
    busy = App.select().where(App.installation_state.startswith("pending_"))
    for app in busy:
        task = Task.get_or_none(Task.id == app.task_id) if app.task_id else None
        if task is not None and (task.active or task.pending):
            continue
        error = (task.error or {}) if task is not None else {}
        message = error.get("message") or "The task doing this work ended without finishing"
        changed = App.update(
            installation_state="error", task_id=None, ts=utcnow(),
            error={"message": message, "reason": error.get("code", "crashed"),
                   "taskId": str(app.task_id) if app.task_id else None,
                   "installationState": app.installation_state}
        ).where((App.id == app.id) & (App.task_id == app.task_id)).execute()
        if changed:  # 0: a new task was queued meanwhile, and that one now decides
            task_steps.show_error_page(app.id)
            eventlog.record("app.error", eventlog.SYSTEM, appId=app.id, message=message)


def reconcile_runtime() -> None:
    containers.protect_app_folders()  # folders made 0755 by versions before 0700 app folders
    known = {app.id: app for app in App.select()}
    mine = containers.instance_id()
    for container in containers.list_managed():
        if container["labels"].get(containers.LABEL_INSTANCE, mine) != mine:
            continue  # another Berth on the same engine
        if container["app_id"] not in known:
            log.warning("stray container %s (%s) is labelled as Berth's but belongs to no app",
                        container["name"], container["id"][:12])
            eventlog.record("app.stray_container", eventlog.SYSTEM, container=container["name"])
    # After a reboot nothing has mounted the network shares: mount them, and restart the apps
    # using them (their containers bound the empty folder).
    restarted = set()
    for app_id in volumes.remount_shares():
        app = known.get(app_id)
        if app is not None and app.installation_state == "installed" and containers.inspect(app.id) is not None:
            apps.queue_task(app, "pending_restart", "app.restart")
            restarted.add(app_id)
    for app in known.values():
        if app.id in restarted:
            continue
        if app.installation_state == "installed" and containers.inspect(app.id) is None:
            log.warning("container of app %s is missing: re-creating it", app.id)
            apps.queue_task(app, "pending_configure", "app.configure")
    # nginx keeps its own copy of the block list: a restored database may hold another one.
    reverse_proxy.set_blocklist(platform_settings.blocklist.networks())
    if known or domains.dashboard.vhost_spec() or reverse_proxy.is_running():
        # (no apps, no nginx: it starts with the first app). The rows are read again under the
        # proxy's lock: an app installed or a dashboard moved since `known` keeps its vhost.
        reverse_proxy.sync_app_vhosts(_all_vhost_specs, certificate=domains.certificate_files)


def _all_vhost_specs() -> list[dict]:
    rows = App.select().where(App.installation_state != "pending_uninstall")
    specs = vhost_specs(rows, reverse_proxy.vhosts())
    return specs + [s for s in [domains.dashboard.vhost_spec()] if s]  # Berth's API at my.<domain>


def vhost_specs(rows: Iterable[App], current: dict | None = None) -> list[dict]:
    """The vhost spec of each app row. A row that cannot have one (a name nginx must not get, a
    domain that is gone, JSON of the wrong shape, a name another app has) is reported and keeps
    its vhost from `current` ({app id: spec} in place) if it has one, so that damage in the
    database does not take a running app offline."""
    proxy = reverse_proxy.proxy()
    specs, served_by = [], {}

    def claim(app_id, spec):
        checked = proxy.spec(**spec)  # the checks sync_app_vhosts makes of every spec at once
        names = [checked["fqdn"], *checked["aliases"], *checked["redirects"]]
        taken = [n for n in names if served_by.get(n, app_id) != app_id]
        if taken:
            raise Conflict(f"{taken[0]} is already served by app {served_by[taken[0]]}")
        served_by.update(dict.fromkeys(names, app_id))
        specs.append(spec)

    for app in rows:
        try:
            claim(app.id, task_steps.vhost_spec(app, _vhost_state(app)))
        except (ApiError, ValueError, KeyError, TypeError, AttributeError) as e:
            kept = (current or {}).get(app.id)
            try:
                if kept:
                    claim(app.id, kept)
            except (ApiError, ValueError, KeyError, TypeError):
                kept = None
            _skip(app, e, kept)
    return specs


def _skip(app, error, kept):
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    what = "keeps its current vhost" if kept else "has no vhost"
    log.error("app %s cannot be given a vhost from its settings and %s: %s", app.id, what, message)
    eventlog.record("app.reconcile_skipped", eventlog.SYSTEM, appId=app.id, message=message,
                    keptVhost=bool(kept))


def _vhost_state(app):
    if app.installation_state == "error":
        return "error"
    if app.installation_state != "installed" or not app.host_port:
        return "installing"
    return "running" if app.run_state == "running" else "stopped"
