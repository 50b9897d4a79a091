"""Backup task bodies (tasks.registry names `backup.*`): full (box + apps) and app backups,
cleanup, app restore and clone, and the whole-Cloudron restore. They run in task processes
(tasks.child); the shared steps are in backups/stages.py, the whole-Cloudron restore in
backups/box_restore.py.
"""
import shutil

import apps
import containers
import eventlog
import reverse_proxy
from apps import task_steps
from backups import box_restore, formats, records, retention, scratch, settings, stages
from models import utcnow
from models.apps import App
from models.backups import Backup
from tasks.context import TaskContext


def _prune(task):
    try:
        outcome = cleanup_backups(task)
        return {"outcome": "ok", "removed": len(outcome["removed"]), "size": outcome["removedBytes"],
                "failed": len(outcome["failed"])}
    except Exception as e:  # noqa: BLE001 - the backup itself is good; say the prune failed
        task.log(f"prune failed: {stages.reason(e)}")
        stages.notify_failure("Removing old backups failed", e, task)
        return {"outcome": "failed", "error": stages.reason(e)}


def _backup_apps(task, storage, cfg, tag):
    """One backup per app with backups enabled, as each app is right before it is read. Returns
    (entries, depends_on): an app that is not installed contributes its newest good backup."""
    entries, depends_on = [], []
    candidates = list(App.select().order_by(App.creation_time))
    steps = len(candidates) + 2
    for i, app in enumerate(candidates):
        app = App.get_or_none(App.id == app.id)   # as it is now, not when the run started
        if app is None:
            continue
        if not app.enable_backup:
            task.log(f"app {app.id}: automatic backups disabled, skipped")
            continue
        if app.installation_state != "installed":
            # Not in a state to read consistently: its newest good backup stands in.
            last = records.newest_of_app(app.id)
            task.log(f"app {app.id} is {app.installation_state}: "
                     + (f"using its last backup {last.id}" if last else "no backup of it exists"))
            if last is not None:
                depends_on.append(last.id)
            continue
        task.progress(5 + int(85 * i / steps), f"Backing up {apps.fqdn(app)} ({i + 1}/{len(candidates)})")
        entry = stages.app_backup(task, storage, cfg, app, tag)
        entries.append(entry)
        depends_on.append(entry["id"])
    task.progress(5 + int(85 * (steps - 2) / steps), "Backing up the platform")
    return entries, depends_on


def full_backup(task: TaskContext, scheduled: bool = False, **_: object) -> dict:
    """Every app with backups enabled, then the platform database; the box backup depends on
    one app backup per app. Result: {backupId, stages{snapshot, upload, verify, prune}, backups[]}."""
    cfg = settings.get_config()
    try:
        stages.check_storage(cfg)
        storage = settings.open_storage(cfg)
        tag = records.new_tag()
        work = scratch.work_dir(task, "full")
        try:
            entries, depends_on = _backup_apps(task, storage, cfg, tag)
            box = stages.box_backup(task, storage, cfg, tag, depends_on, work)
            entries.append(box)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        task.progress(95, "Removing old backups")
        prune = _prune(task)
    except Exception as e:
        stages.notify_failure("Backup failed", e, task)
        raise
    task.progress(100, f"Backed up as {box['id']}")
    eventlog.record("backup.finish", eventlog.SYSTEM, taskId=str(task.id), backupId=box["id"])
    return {"backupId": box["id"], "stages": stages.totals(entries, prune), "backups": entries}


def app_backup(task: TaskContext, app_id: str, **_: object) -> dict:
    cfg = settings.get_config()
    try:
        stages.check_storage(cfg)
        app = apps.get_app(app_id)
        task.progress(10, f"Backing up {apps.fqdn(app)}")
        entry = stages.app_backup(task, settings.open_storage(cfg), cfg, app, records.new_tag())
    except Exception as e:
        stages.notify_failure("App backup failed", e, task)
        raise
    task.progress(100, f"Backed up as {entry['id']}")
    return {"backupId": entry["id"], "stages": entry["stages"], "backups": [entry]}


def cleanup_backups(task: TaskContext) -> dict:
    """Apply retention (backups.retention): remove the data, then the row, of each backup to go;
    a removal the storage refuses keeps the row (tried again next time). Also removes the
    leftovers of backup runs that have no backup left (partial uploads of killed tasks)."""
    records.mark_stale()
    scratch.remove_leftovers(task)
    storage = settings.open_storage()
    keep, remove = retention.current_plan()
    removed, failed, removed_bytes = [], [], 0
    for backup in remove:
        try:
            formats.remove(backup.format, storage, backup.remote_path)
            storage.remove(records.meta_path(backup.remote_path))
        except Exception as e:  # noqa: BLE001 - one stuck backup must not keep the others
            task.log(f"could not remove {backup.id}: {stages.reason(e)}")
            failed.append({"id": backup.id, "error": stages.reason(e)})
            continue
        Backup.delete().where(Backup.id == backup.id).execute()
        removed.append(backup.id)
        removed_bytes += backup.size or 0
        task.log(f"removed {backup.state} backup {backup.id}")
    for tag in sorted({b.split("/", 1)[0] for b in removed if "/" in b}):
        if not Backup.select().where(Backup.id.startswith(tag + "/")).exists():
            try:
                storage.remove_prefix(tag + "/")
            except Exception as e:  # noqa: BLE001
                task.log(f"could not remove leftovers under {tag}/: {stages.reason(e)}")
    outcome = {"removed": removed, "kept": [b.id for b in keep], "failed": failed, "removedBytes": removed_bytes}
    if any(b.format == "rsync" for b in remove if b.id in removed):
        outcome["sweep"] = _sweep(task, storage, keep)
    return outcome


def _sweep(task, storage, keep):
    """Objects of the rsync store that no backup references any more go (formats.sweep). This
    task holds the `backup` lock, so no backup of this server is being written; the kept rows are
    marked too, and a `creating` row (a backup running after all) makes the sweep wait."""
    running = [b.remote_path for b in Backup.select().where(Backup.state == "creating")]
    try:
        return formats.sweep(storage, task.log, keep=[b.remote_path for b in keep if b.format == "rsync"],
                             running=running)
    except Exception as e:  # noqa: BLE001 - the removals stand; unreferenced objects wait for the next one
        task.log(f"could not remove unreferenced backup objects: {stages.reason(e)}")
        return {"outcome": "failed", "error": stages.reason(e)}


def cleanup(task: TaskContext, **_: object) -> dict:
    task.progress(10, "Removing old backups")
    try:
        outcome = cleanup_backups(task)
    except Exception as e:
        stages.notify_failure("Removing old backups failed", e, task)
        raise
    task.progress(100, f"Removed {len(outcome['removed'])} backup(s)")
    return outcome


# ---- restore and clone --------------------------------------------------------------------------

def _give_back(app_id, task, previous):
    """A restore that failed before touching the app leaves it as it was."""
    previous = previous or {"installationState": "installed", "error": None}
    App.update(installation_state=previous["installationState"], error=previous.get("error"),
               task_id=None, ts=utcnow()).where((App.id == app_id) & (App.task_id == task.id)).execute()


def restore_app(task: TaskContext, app_id: str, backup_id: str, previous: dict | None = None,
                fresh: bool = False, **_: object) -> dict:
    """The app comes back exactly as backed up. The backup is downloaded beside the data folder
    first; only when that worked (right key, complete, verified) is the app touched: container
    removed, data folder swapped (two renames), the app row set to the backed-up configuration,
    container re-created. A failure before that point leaves the app as it was (`fresh`: an app of a
    whole-Cloudron restore, which has nothing to go back to, goes to `error` like any failure).
    The old data folder is removed last, once the app is back and the restored data is on disk:
    deleting a large tree takes seconds the app need not wait for, and until the sync the old
    folder is what there is to fall back on."""
    staged = scratch.staged_data(app_id, task)
    if not fresh:
        try:
            App.update(task_id=task.id, ts=utcnow()).where(App.id == app_id).execute()
            backup = stages.download(task, backup_id, staged)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            _give_back(app_id, task, previous)
            raise
    old = None
    try:
        with task_steps.run_app_task(task, app_id, "pending_restore") as app:
            old_fqdn, old_manifest = apps.fqdn(app), app.manifest
            try:
                if fresh:
                    backup = stages.download(task, backup_id, staged)
                task.progress(30, "Stopping the app")
                containers.remove(app.id)
                task.progress(35, "Replacing the data folder")
                old = scratch.swap_data(app.id, stages.data_folder(backup, staged), task)
                if backup.app_config:
                    App.update(**records.config_fields(backup.app_config), update_time=utcnow()).where(
                        App.id == app.id).execute()
                app = App.get_by_id(app.id)
                # the databases as backed up, in place of today's (the dumps are in `staged`)
                stages.restore_addons(task, app, backup, staged, previous_manifest=old_manifest)
            finally:
                shutil.rmtree(staged, ignore_errors=True)
            if apps.fqdn(app) != old_fqdn and app.id in reverse_proxy.vhosts():
                reverse_proxy.remove_app_vhost(app.id)
            task_steps.bring_up(task, app)
            if (backup.app_config or {}).get("runState") == "stopped":
                containers.stop(app.id)
                App.update(run_state="stopped").where(App.id == app.id).execute()
                task_steps.write_proxy(task, app, "stopped")
            else:
                App.update(run_state="running").where(App.id == app.id).execute()
    except BaseException:
        if old is not None:
            task.log(f"the data folder as it was before the restore is kept in {old} "
                     "(until the next backup cleanup)")
        raise
    # The app is back (installed, healthy): only now does the old data folder go, once the restored
    # one is on disk. Removing a large tree takes seconds; the app does not wait for it.
    if old is not None:
        task.log("removing the data folder as it was before the restore")
    scratch.discard_old(old, task)
    return {"appId": app_id, "backupId": backup.id}


def clone_app(task: TaskContext, app_id: str, backup_id: str, **_: object) -> dict:
    with task_steps.run_app_task(task, app_id, "pending_clone") as app:
        staged = scratch.staged_data(app.id, task)
        try:
            backup = stages.download(task, backup_id, staged)
            old = scratch.swap_data(app.id, stages.data_folder(backup, staged), task)
            # databases of its own (new credentials), loaded from the source's dumps
            stages.restore_addons(task, app, backup, staged)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
        task_steps.bring_up(task, app)
    scratch.discard_old(old, task)    # a clone's data folder was empty (or absent): nothing to wait for
    return {"appId": app_id, "backupId": backup.id}


def restore_cloudron(task: TaskContext, backup_config: dict, backup_id: str, **_: object) -> dict:
    """POST /cloudron/restore (see backups/box_restore.py)."""
    return box_restore.run(task, backup_config, backup_id)
