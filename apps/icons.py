"""Custom app icons: an image file per app under the data dir (core.data_paths.app_icon)."""
import base64
import binascii
import contextlib
import os

import apps
import eventlog
from core import data_paths, files, images
from core.errors import BadRequest, NotFound

ICON_MAX_BYTES = 512 * 1024


def icon_path(app_id: str) -> str:
    return data_paths.app_icon(app_id)


def _decode(icon_b64):
    try:
        data = base64.b64decode(icon_b64.split(",", 1)[-1], validate=True)  # data: URLs too
    except (binascii.Error, ValueError):
        raise BadRequest("is not valid base64", "icon") from None
    if not images.is_image(data) or len(data) > ICON_MAX_BYTES:
        raise BadRequest(f"must be a PNG, JPEG, GIF or WebP image of at most {ICON_MAX_BYTES // 1024} KiB", "icon")
    return data


def set_icon(actor: eventlog.Actor, app_id: str, icon_b64: str | None) -> None:
    """A custom icon (base64 image), or None to go back to no custom icon."""
    app = apps.get_app(app_id)
    path = icon_path(app.id)
    if icon_b64 is None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
    else:
        data = _decode(icon_b64)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        files.write_atomic(path, data)
    apps.set_fields(actor, app.id, has_icon=icon_b64 is not None)


def read_icon(actor: eventlog.Actor, app_id: str) -> bytes:
    """The icon of an app `actor` may see (apps.get_visible_app: the rule of GET /apps)."""
    app = apps.get_visible_app(actor, app_id)
    try:
        with open(icon_path(app.id), "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise NotFound("This app has no icon") from None
