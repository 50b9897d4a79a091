"""Putting a built (or pulled, or earlier) image live without breaking the running version.

    1. a backup first when the app has data (backups.stages.app_backup, as for an app backup)
    2. the new container starts beside the old one under a second name (containers.deploy_switch),
       on a new host port, with the app's configuration and the new manifest
    3. it must answer the manifest's healthCheckPath within BERTH_DEPLOY_HEALTH_TIMEOUT
    4. nginx is switched to the new upstream (reverse_proxy: `nginx -t`, then a graceful reload:
       old workers finish their requests), the app row records the new container and port
    5. the new container takes the app's name, the old one gets a short drain and is removed

A failure before step 4 removes the new container; the old one never stopped serving, so the
deployment is `rolled-back` with the reason and a notification tells the admins. Apps that bind
fixed TCP/UDP ports cannot run two containers at once: for them the old container is stopped
(not removed) before the new one starts and started again when the new one fails.
"""
import logging
import os

import apps
import containers
import eventlog
import reverse_proxy
from apps import probe, task_steps
from backups import records as backup_records
from backups import settings as backup_settings
from backups import stages as backup_stages
from containers import deploy_switch
from core import config
from eventlog import notifications
from models import utcnow
from models.apps import App
from tasks.context import TaskContext

log = logging.getLogger("berth.deployments")

DRAIN_SECONDS = 1.0     # at most: nginx's old workers finish their requests to the old container meanwhile
DATA_ADDONS = ("postgresql", "mysql", "mongodb", "redis")


class RolledBack(Exception):
    """The new version did not become healthy; the old one serves on. `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def has_data(app: App) -> bool:
    """Something a backup would keep: files in the data folder or a database addon."""
    if any(name in DATA_ADDONS for name in (app.manifest.get("addons") or {})):
        return True
    folder = apps.data_dir(app.id)
    try:
        with os.scandir(folder) as entries:
            return any(True for _ in entries)
    except OSError:
        return False


def backup_first(task: TaskContext, app: App) -> str | None:
    """The app backup taken before a deploy (apps with backups enabled and data); its id."""
    if not app.enable_backup or not has_data(app):
        task.log("No backup before the deploy: " + ("backups are disabled for the app" if not app.enable_backup
                                                     else "the app has no data yet"))
        return None
    task.progress(45, "Backing up the app before the deploy")
    cfg = backup_settings.get_config()
    backup_stages.check_storage(cfg)
    entry = backup_stages.app_backup(task, backup_settings.open_storage(cfg), cfg, app, backup_records.new_tag())
    task.log(f"Backed up as {entry['id']}")
    return entry["id"]


def _copy(app: App, **fields: object) -> App:
    copy = App(**dict(app.__data__))
    for name, value in fields.items():
        setattr(copy, name, value)
    return copy


def roll_out(task: TaskContext, app: App, manifest: dict) -> App:
    """Make `manifest` (its dockerImage present locally) the app's running version, or raise
    RolledBack with the old version still serving. Returns the app as it now runs."""
    backup_first(task, app)
    new = _copy(app, manifest=manifest, host_port=None)
    if (manifest.get("addons") or {}) != (app.manifest.get("addons") or {}):
        task_steps.setup_addons(task, new, percent=48)
    current = containers.inspect(app.id)
    beside = not app.port_bindings and current is not None and current["running"]
    app_name, next_name = containers.container_name(app.id), deploy_switch.next_name(app.id)
    if not beside and current is not None and current["running"]:
        task.log("The app binds fixed ports: stopping the old version while the new one starts")
        deploy_switch.stop(app_name)
    limit = config.get().deploy_health_timeout
    try:
        new = task_steps.create_container(task, new, percent=50, name=next_name)
        task.progress(75, f"Waiting up to {limit} s for {manifest['healthCheckPath']} to answer")
        probe.wait_healthy(new.host_port, manifest["healthCheckPath"], timeout=limit, log=task.log)
    except Exception as exc:  # noqa: BLE001 - whatever failed, the old version goes on serving
        _give_back(task, app, beside, next_name)
        raise RolledBack(str(exc) or type(exc).__name__) from exc
    task.progress(85, "Switching the reverse proxy to the new version")
    task_steps.set_app(app.id, manifest=manifest, host_port=new.host_port, container_id=new.container_id,
                       run_state="running", health="healthy", health_changed_at=utcnow(), update_time=utcnow())
    try:
        task_steps.write_proxy(task, new, percent=88)
    except Exception as exc:  # noqa: BLE001 - nginx refused: the old upstream is still in place
        task_steps.set_app(app.id, manifest=app.manifest, host_port=app.host_port, container_id=app.container_id)
        _give_back(task, app, beside, next_name)
        raise RolledBack(f"The reverse proxy could not be switched: {exc}") from exc
    deploy_switch.promote(app.id)
    if beside and not reverse_proxy.drain(DRAIN_SECONDS):
        task.log(f"nginx workers of the previous configuration still busy after {DRAIN_SECONDS:g} s")
    task.progress(95, "Removing the old version")
    deploy_switch.remove(deploy_switch.old_name(app.id))
    return new


def _give_back(task, app, beside, next_name):
    task.log("Removing the new version; the old one keeps serving")
    try:
        deploy_switch.remove(next_name)
        if not beside and app.run_state == "running":
            deploy_switch.start(containers.container_name(app.id))
    except Exception:  # noqa: BLE001 - the reason of the rollback is what matters
        log.exception("cleaning up after the failed deploy of app %s", app.id)


def notify_rolled_back(app: App, number: int, reason: str, task_id: int) -> None:
    """The admins hear of a rollback they did not ask for."""
    title = f"Deploy #{number} of {apps.fqdn(app)} was rolled back"
    try:
        notifications.add(title, f"{reason}\n\nThe previous version keeps running. Task {task_id}; see its log.")
    except Exception:  # noqa: BLE001 - the rollback itself is recorded on the deployment
        log.exception("could not notify about the rolled back deploy of app %s", app.id)
    eventlog.record("app.deploy.rolled_back", eventlog.SYSTEM, appId=app.id, taskId=str(task_id), reason=reason)

