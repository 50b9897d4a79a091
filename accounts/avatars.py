"""Profile pictures, kept as files under <data dir>/avatars/<user id>."""
import os

import eventlog
from core import config
from core.errors import BadRequest
from models import User

MAX_BYTES = 2 * 1024 * 1024
IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"RIFF")


def _path(user_id):
    return os.path.join(config.get().data_dir, "avatars", user_id)


def save(actor, data):
    if not data:
        raise BadRequest("is empty", "avatar")
    if len(data) > MAX_BYTES:
        raise BadRequest(f"must be at most {MAX_BYTES // 1024} KiB", "avatar")
    if not data.startswith(IMAGE_MAGIC):
        raise BadRequest("must be a PNG, JPEG, GIF or WebP image", "avatar")
    path = _path(actor.user_id)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)  # a half-written file never replaces the old picture
    User.update(has_avatar=True).where(User.id == actor.user_id).execute()
    eventlog.record("user.avatar", actor, userId=actor.user_id)


def remove(actor):
    try:
        os.remove(_path(actor.user_id))
    except FileNotFoundError:
        pass
    User.update(has_avatar=False).where(User.id == actor.user_id).execute()
    eventlog.record("user.avatar", actor, userId=actor.user_id, removed=True)
