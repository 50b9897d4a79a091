"""Stored addon state: each app's addon environment (with its password) and the service rows
(root password, memory limit, whether it should run). Secrets are generated here and never logged."""
import hashlib
import os
import secrets
import uuid
from typing import BinaryIO

from models.addons import AddonService, AppAddon


def new_password() -> str:
    """48 hex digits: safe in a URL, a shell-free SQL literal and a Redis argument."""
    return secrets.token_hex(24)


def app_env(app_id: str, addon: str) -> dict[str, str] | None:
    row = AppAddon.get_or_none(AppAddon.app_id == app_id, AppAddon.addon == addon)
    return None if row is None else dict(row.env)


def put_app_env(app_id: str, addon: str, env: dict[str, str]) -> None:
    AppAddon.insert(app_id=app_id, addon=addon, env=env).on_conflict(
        conflict_target=[AppAddon.app_id, AppAddon.addon], update={AppAddon.env: env}).execute()


def forget_app_env(app_id: str, addon: str) -> None:
    AppAddon.delete().where(AppAddon.app_id == app_id, AppAddon.addon == addon).execute()


def app_addons(app_id: str) -> list[str]:
    return [row.addon for row in AppAddon.select(AppAddon.addon).where(AppAddon.app_id == app_id)]


def service(name: str) -> AddonService | None:
    return AddonService.get_or_none(AddonService.name == name)


def ensure_service_row(name: str, root_password: str | None = None) -> AddonService:
    """The service's row, created with a new root password (or `root_password`) the first time.
    Concurrent first calls agree: the insert ignores a conflict and the row is read back."""
    AddonService.insert(name=name, root_password=root_password or new_password()).on_conflict_ignore().execute()
    return AddonService.get(AddonService.name == name)


def set_service(name: str, **fields: object) -> None:
    AddonService.update(**fields).where(AddonService.name == name).execute()


def forget_service(name: str) -> None:
    AddonService.delete().where(AddonService.name == name).execute()


def services() -> list[AddonService]:
    return list(AddonService.select().order_by(AddonService.name))


def app_key(app_id: str) -> str:
    """32 hex digits naming an app's databases and users: the UUID's hex (what Cloudron uses), or
    a hash of any other id. Only [0-9a-f]: nothing from a request ever reaches SQL."""
    try:
        return uuid.UUID(app_id).hex
    except (ValueError, AttributeError, TypeError):
        return hashlib.sha256(str(app_id).encode()).hexdigest()[:32]


def create_private(path: str) -> BinaryIO:
    """Open `path` for a dump: created or truncated, 0600, never through a symlink."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    return os.fdopen(fd, "wb")


def open_dump(path: str) -> BinaryIO:
    """Open a dump to load, never through a symlink."""
    return os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb")
