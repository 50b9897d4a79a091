"""Automatic app updates: on the `app_autoupdate_pattern` schedule, every installed app that came
from the catalog (appStoreId) and has automatic updates on is updated to the catalog's newest
version, through the same update task a user would start."""
import logging

import apps
import eventlog
from appstore import catalog
from core.errors import ApiError
from models.apps import App

log = logging.getLogger("berth.updates")


def _newer(candidate, current):
    return catalog.version_key(candidate) > catalog.version_key(current)


def _newer_manifest(app):
    """The catalog's newest manifest of the app when it is newer than the installed one, else None."""
    _, manifest = catalog.resolve(app.app_store_id.partition("@")[0])
    return manifest if _newer(manifest["version"], app.manifest.get("version", "0")) else None


def available() -> dict[str, dict]:
    """{app id: {manifest, unstable}} for every catalog app with a newer version (GET
    /updater/updates). Read from the catalog on each call: Berth keeps no update cache. An app
    whose catalog entry cannot be read is left out, as in check_all."""
    updates = {}
    for app in App.select().where((App.installation_state == "installed") & (App.app_store_id != "")):
        try:
            manifest = _newer_manifest(app)
        except ApiError as e:
            log.warning("update check of app %s skipped: %s", app.id, e.message)
            continue
        if manifest is not None:
            updates[app.id] = {"manifest": manifest, "unstable": False}
    return updates


def check_all(fire_time: float | None = None) -> list[str]:
    """Queue an update task for each app with a newer catalog version; returns their app ids."""
    started = []
    candidates = App.select().where((App.installation_state == "installed") & (App.app_store_id != "")
                                    & (App.enable_automatic_update == True))  # noqa: E712
    for app in candidates:
        try:
            manifest = _newer_manifest(app)
            if manifest is not None:
                store_id = app.app_store_id.partition("@")[0]
                apps.update(eventlog.SYSTEM, app.id, {"appStoreId": f"{store_id}@{manifest['version']}"})
                started.append(app.id)
        except ApiError as e:  # one app's catalog problem must not stop the others
            log.warning("automatic update of app %s skipped: %s", app.id, e.message)
    return started
