"""Automatic app updates: on the `app_autoupdate_pattern` schedule, every installed app that came
from the catalog (appStoreId) and has automatic updates on is updated to the catalog's newest
version, through the same update task a user would start."""
import logging

import apps
import eventlog
from apps import catalog
from core.errors import ApiError
from models.apps import App

log = logging.getLogger("berth.updates")


def _newer(candidate, current):
    return catalog.version_key(candidate) > catalog.version_key(current)


def check_all(fire_time=None):
    """Queue an update task for each app with a newer catalog version; returns their app ids."""
    started = []
    candidates = App.select().where((App.installation_state == "installed") & (App.app_store_id != "")
                                    & (App.enable_automatic_update == True))  # noqa: E712
    for app in candidates:
        store_id = app.app_store_id.partition("@")[0]
        try:
            _, manifest = catalog.resolve(store_id)
            if _newer(manifest["version"], app.manifest.get("version", "0")):
                apps.update(eventlog.SYSTEM, app.id, {"appStoreId": f"{store_id}@{manifest['version']}"})
                started.append(app.id)
        except ApiError as e:  # one app's catalog problem must not stop the others
            log.warning("automatic update of app %s skipped: %s", app.id, e.message)
    return started


def nothing(fire_time=None):
    """Platform updates come with the Berth package; the schedule is kept for clients only."""
