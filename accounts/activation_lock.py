"""The activation lock: the `activated` setting row, and the one module that names it.

Activation (accounts/sessions.py) and a whole-Cloudron restore (backups) both turn a fresh
instance into a used one, and must exclude each other and themselves. The row is the lock: it is
inserted (not upserted) by whoever goes first, inside that one's transaction, so a concurrent
second attempt fails on the unique setting name. "Activated" as the API reports it is a different
fact, "a user exists" (`accounts.is_activated`); the lock is held a little earlier (during a
restore, before the restored users exist) and released only while no user exists.
"""
import peewee

from core.errors import Conflict
from models import Setting, User, database

NAME = "activated"


def acquire() -> None:
    """Take the lock, or raise Conflict when activation or a restore already has it. Call inside
    the transaction that does the work, so a failure gives the lock back with the rest."""
    try:
        Setting.insert(name=NAME, value=True).execute()
    except peewee.IntegrityError:
        raise Conflict("Cloudron is already activated") from None


def hold() -> None:
    """Make sure the lock is held, whoever took it (a restored database brings this instance's
    rows back: the restore keeps holding the lock it took)."""
    Setting.put(NAME, True)


def is_held() -> bool:
    return Setting.get_or_none(Setting.name == NAME) is not None


def release_if_unused() -> None:
    """Give a fresh instance back to activation/restore: drop the lock while no user exists (a
    failed or killed restore that created nobody). Never releases an activated instance."""
    with database.atomic():
        if not User.select().exists():
            Setting.delete().where(Setting.name == NAME).execute()
