"""Keeping apps honest: the recurring health check and the reconciliation after a restart.

`check_all` runs every 10 s through the task engine's schedules (exactly once across
processes). It
- ends `pending_*` states whose task is over without having said so (the task process was
  killed: server SIGKILL, timeout): the app goes to `error` naming the task's error, so repair
  can take over; an app is never left half-installed and silent;
- on its first run in a process, reconciles: installed apps whose container is missing get a
  configure task that re-creates it, containers labelled as Berth's that belong to no app are
  reported, and every vhost is rewritten from the database;
- updates `health`/`runState` of installed apps from the container and the health-check path,
  and starts a container that died while it should run (Docker's restart policy covers
  crashes; a `docker kill` counts as a manual stop for Docker, not for Berth).
"""
import logging

import apps
from apps import task_steps
import eventlog
import containers
import reverse_proxy
import tasks
from models import utcnow
from models.apps import App
from models.tasks import Task
from tasks import schedules

log = logging.getLogger("berth.apps")
SYSTEM = eventlog.Actor(username="berth")
_reconciled = False


def register():
    schedules.ensure("app-health", "*/10 * * * * *", "apps.health_check")


def check_all(fire_time=None):
    global _reconciled
    reconcile_states()
    if not _reconciled:
        reconcile_runtime()
        _reconciled = True  # only once it worked: a failure (engine down) is retried next time
    for app in App.select().where(App.installation_state == "installed"):
        check(app)


def reconcile_states():
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
            eventlog.record("app.error", SYSTEM, appId=app.id, message=message)


def reconcile_runtime():
    known = {app.id: app for app in App.select()}
    mine = containers.instance_id()
    for container in containers.list_managed():
        if container["labels"].get(containers.LABEL_INSTANCE, mine) != mine:
            continue  # another Berth on the same engine
        if container["app_id"] not in known:
            log.warning("stray container %s (%s) is labelled as Berth's but belongs to no app",
                        container["name"], container["id"][:12])
            eventlog.record("app.stray_container", SYSTEM, container=container["name"])
    for app in known.values():
        if app.installation_state == "installed" and containers.inspect(app.id) is None:
            log.warning("container of app %s is missing: re-creating it", app.id)
            apps.App.update(installation_state="pending_configure").where(App.id == app.id).execute()
            task_id = tasks.start("app", "app.configure", {"app_id": app.id}, app_id=app.id)
            App.update(task_id=task_id).where(App.id == app.id).execute()
    specs = [task_steps.vhost_spec(app, _vhost_state(app)) for app in known.values()
             if app.installation_state != "pending_uninstall"]
    if specs or reverse_proxy.is_running():  # no apps, no nginx: it starts with the first app
        reverse_proxy.sync_app_vhosts(specs)


def _vhost_state(app):
    if app.installation_state == "error":
        return "error"
    if app.installation_state != "installed" or not app.host_port:
        return "installing"
    return "running" if app.run_state == "running" else "stopped"


def check(app):
    if app.run_state != "running" or app.debug_mode:
        return  # a stopped app, or one being debugged, is not expected to answer
    state = containers.inspect(app.id)
    if state is None or not state["running"]:
        _record(app, "dead")
        if state is not None:
            log.warning("app %s container is not running (exit %s): starting it", app.id, state.get("exit_code"))
            containers.start(app.id)
        return
    status, _ = containers.probe(app.host_port, app.manifest.get("healthCheckPath", "/"))
    _record(app, "healthy" if status is not None and 200 <= status < 400 else "unhealthy")


def _record(app, health):
    if app.health == health:
        return
    App.update(health=health, health_changed_at=utcnow()).where(App.id == app.id).execute()
    if health == "healthy":
        eventlog.record("app.up", SYSTEM, appId=app.id)
    elif app.health in (None, "healthy"):
        eventlog.record("app.down", SYSTEM, appId=app.id, health=health)
