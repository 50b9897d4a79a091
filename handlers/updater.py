"""Updater tag (Cloudron 7+): pending updates of apps (from the app catalog) and of the platform.

Berth updates itself through its package, never in place, so the platform ("box") part is always
empty: GET /updater/updates has no `box` key and POST /updater/update, Cloudron's platform update,
answers as Cloudron does when there is nothing to update (422 "No update available"). Apps are
updated through POST /apps/{id}/update or the automatic update schedule.
"""
from apps import updates
from core import errors
from web.unbuilt import not_implemented

__getattr__ = not_implemented(__name__)


def get_updates():
    return {"updates": updates.available()}


def update(body=None):
    return errors.body(422, "No update available"), 422
