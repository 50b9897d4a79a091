"""Updater tag (Cloudron 7+): pending updates of apps (from the app catalog) and of the platform.

The platform ("box") part is the newer Berth release the release feed offers (platform_update):
GET /updater/updates lists it as `box` once a check found one, and POST /updater/update starts the
same update task as POST /cloudron/update (a backup first, then the verified release is staged and
installed at the next start); with nothing newer it answers 422 "No update available", as Cloudron.
Apps are updated through POST /apps/{id}/update or the automatic update schedule.
"""
from apps import updates
from platform_update import updater as platform_updater
from web.request_context import actor
from web.unbuilt import not_implemented

__getattr__ = not_implemented(__name__)


def get_updates():
    box = platform_updater.box_update()
    return {"updates": {**updates.available(), **({"box": box} if box else {})}}


def update(token_info, body=None):
    return {"taskId": str(platform_updater.start_update(actor(token_info), body or {}))}, 202
