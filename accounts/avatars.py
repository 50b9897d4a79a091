"""Profile pictures, kept as files under <data dir>/avatars/<user id>."""
import os

import eventlog
from core import data_paths, images
from core.errors import BadRequest
from core.files import write_atomic
from models import User

MAX_BYTES = 2 * 1024 * 1024


def save(actor: eventlog.Actor, data: bytes) -> None:
    if not data:
        raise BadRequest("is empty", "avatar")
    if len(data) > MAX_BYTES:
        raise BadRequest(f"must be at most {MAX_BYTES // 1024} KiB", "avatar")
    if not images.is_image(data):
        raise BadRequest("must be a PNG, JPEG, GIF or WebP image", "avatar")
    os.makedirs(data_paths.avatars(), exist_ok=True)
    write_atomic(data_paths.avatar(actor.user_id), data)  # a half-written file never replaces the old picture
    User.update(has_avatar=True).where(User.id == actor.user_id).execute()
    eventlog.record("user.avatar", actor, userId=actor.user_id)


def remove(actor: eventlog.Actor) -> None:
    try:
        os.remove(data_paths.avatar(actor.user_id))
    except FileNotFoundError:
        pass
    User.update(has_avatar=False).where(User.id == actor.user_id).execute()
    eventlog.record("user.avatar", actor, userId=actor.user_id, removed=True)
