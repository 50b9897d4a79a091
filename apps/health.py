"""Keeping apps honest: the recurring health check.

`check_all` runs every 10 s through the task engine's schedules (exactly once across
processes). It
- reconciles (apps.reconcile): pending states whose task died, and on its first run in a
  process, missing containers, stray containers and every vhost;
- updates `health`/`runState` of installed apps from the container and the health-check path,
  and starts a container that died while it should run (Docker's restart policy covers
  crashes; a `docker kill` counts as a manual stop for Docker, not for Berth);
- starts addon services (PostgreSQL, MySQL, each app's Redis) that should run and do not, before
  the apps are checked (an app whose database is down is unhealthy until it is back), and
  records `service.restart` in the event log for each;
- brings the mail server back after a restart or reboot, in the background (mail.restore).

A failure with one app (or of the reconciliation) is logged and the other apps are still
checked: one bad row must not leave every app unwatched.
"""
import logging

import containers
import eventlog
from addons import services as addons_services
from apps import probe, reconcile
from mail import restore as mail_restore
from models import utcnow
from models.apps import App
from tasks import schedules

log = logging.getLogger("berth.apps")
_reconciled = False


def register() -> None:
    schedules.ensure("app-health", "*/10 * * * * *", "apps.health_check")


def check_all(fire_time: float | None = None) -> None:
    global _reconciled
    reconcile.reconcile_states()
    if not _reconciled:
        try:
            reconcile.reconcile_runtime()
            _reconciled = True  # only once it worked: a failure (engine down) is retried next time
        except Exception:  # noqa: BLE001 - logged; the health checks below still run
            log.exception("reconciliation of apps failed; retried at the next health check")
    heal_services()
    restore_mail()
    for app in App.select().where(App.installation_state == "installed"):
        try:
            check(app)
        except Exception:  # noqa: BLE001 - one app's failure must not stop the others' checks
            log.exception("health check of app %s failed", app.id)


def heal_services() -> None:
    try:
        healed = addons_services.check_and_heal()
    except Exception:  # noqa: BLE001 - logged; the apps are still checked
        log.exception("checking the addon services failed")
        return
    for name in healed:
        # Cloudron's name of an app's Redis is redis:<appId> (addons call it redis-<appId>).
        shown = "redis:" + name[6:] if name.startswith("redis-") else name
        eventlog.record("service.restart", eventlog.SYSTEM, id=shown, reason="it was not running")


def restore_mail() -> None:
    """After a restart or reboot the mail server is brought back from the database, in the
    background (mail.restore; a no-op once done, and while no mail domain is enabled)."""
    try:
        mail_restore.restore_soon()
    except Exception:  # noqa: BLE001 - logged; the apps are still checked
        log.exception("restoring the mail server failed")


def check(app: App) -> None:
    if app.run_state != "running" or app.debug_mode:
        return  # a stopped app, or one being debugged, is not expected to answer
    state = containers.inspect(app.id)
    if state is None or not state["running"]:
        _record(app, "dead")
        if state is not None:
            log.warning("app %s container is not running (exit %s): starting it", app.id, state.get("exit_code"))
            containers.start(app.id)
        return
    status, _ = probe.probe(app.host_port, app.manifest.get("healthCheckPath", "/"))
    _record(app, "healthy" if status is not None and 200 <= status < 400 else "unhealthy")


def _record(app, health):
    if app.health == health:
        return
    App.update(health=health, health_changed_at=utcnow()).where(App.id == app.id).execute()
    if health == "healthy":
        eventlog.record("app.up", eventlog.SYSTEM, appId=app.id)
    elif app.health in (None, "healthy"):
        eventlog.record("app.down", eventlog.SYSTEM, appId=app.id, health=health)
