"""App task bodies, reached through the stable names of tasks.registry (`app.install`, …).

Each body is a short list of the steps in apps.task_steps, inside `run_app_task`, which records
the outcome on the app row.
"""
import apps
import containers
import domains
import reverse_proxy
from addons import registry as addon_registry
from apps import task_steps
from models import database, utcnow
from models.apps import App
from tasks.context import TaskContext


def install(task: TaskContext, app_id: str, **_: object) -> None:
    with task_steps.run_app_task(task, app_id, "pending_install") as app:
        # everything the addons get is new: a failed provisioning removes what it made
        task_steps.bring_up(task, app, rollback_addons=True)


def configure(task: TaskContext, app_id: str, previous_hosts: list[str] | tuple = (), **_: object) -> None:
    """Re-create the container from the stored configuration (also what repair runs).
    `previous_hosts`: the names before a location change, whose DNS records go."""
    with task_steps.run_app_task(task, app_id, "pending_configure") as app:
        old = reverse_proxy.vhosts().get(app.id)
        if old and old.get("fqdn") != apps.fqdn(app):
            reverse_proxy.remove_app_vhost(app.id)
        task_steps.bring_up(task, app)
        if previous_hosts:
            domains.dns_records.remove(task.log, set(previous_hosts) - set(domains.dns_records.app_hosts(app)))
        if app.run_state == "stopped":
            containers.stop(app.id)
            task_steps.set_app(app.id, run_state="stopped")
            task_steps.write_proxy(task, app, "stopped")


def update(task: TaskContext, app_id: str, manifest: dict, app_store_id: str | None = None, **_: object) -> None:
    with task_steps.run_app_task(task, app_id, "pending_update") as app:
        task.progress(5, f"Updating to {manifest['id']} {manifest['version']}")
        task_steps.ensure_image(task, manifest["dockerImage"])
        # Addons the new version no longer declares go (as on Cloudron); the scheduler's entries
        # are replaced by the new manifest's in bring_up.
        addon_registry.teardown_app(app, task.log, manifest=app.manifest, keep=manifest)
        task_steps.set_app(app.id, manifest=manifest, app_store_id=app_store_id or app.app_store_id,
                           update_time=utcnow())
        app.manifest = manifest
        task_steps.bring_up(task, app)


def start(task: TaskContext, app_id: str, **_: object) -> None:
    _run_container(task, app_id, "pending_start", containers.start, "Starting container", "Started")


def stop(task: TaskContext, app_id: str, **_: object) -> None:
    with task_steps.run_app_task(task, app_id, "pending_stop") as app:
        task.progress(30, "Stopping container")
        containers.stop(app.id)
        task_steps.set_app(app.id, run_state="stopped", health=None)
        task_steps.write_proxy(task, app, "stopped")
        task.progress(100, "Stopped")


def restart(task: TaskContext, app_id: str, **_: object) -> None:
    _run_container(task, app_id, "pending_restart", containers.restart, "Restarting container", "Restarted")


def _run_container(task, app_id, state, action, doing, done):
    """Start or restart the container (re-created if it is gone), then wait for health."""
    with task_steps.run_app_task(task, app_id, state) as app:
        task.progress(30, doing)
        if containers.inspect(app.id) is None:
            app = task_steps.create_container(task, app)
        else:
            action(app.id)
        task_steps.set_app(app.id, run_state="running")
        task_steps.wait_healthy(task, app)
        task_steps.write_proxy(task, app)
        task.progress(100, done)


def uninstall(task: TaskContext, app_id: str, **_: object) -> None:
    with task_steps.run_app_task(task, app_id, "pending_uninstall") as app:
        task.progress(20, "Removing container")
        containers.remove(app.id)
        task.progress(50, "Removing reverse proxy configuration")
        reverse_proxy.remove_app_vhost(app.id)
        task.progress(60, "Removing DNS records")
        domains.dns_records.remove(task.log, domains.dns_records.app_hosts(app))
        domains.acme_orders.remove_user_certificates(domains.dns_records.app_hosts(app))
        task.progress(65, "Removing addons")
        # databases, users, the app's Redis, scheduler entries; a failure fails the uninstall
        # (the app stays, in error, and repair tries again) rather than leaving them behind
        addon_registry.teardown_app(app, task.log)
        task.progress(70, "Removing data")
        apps.delete_data(app.id)
        with database.atomic():
            App.delete().where(App.id == app.id).execute()
        task.progress(100, "Uninstalled")
