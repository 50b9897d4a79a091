"""Notifications for admins: things that went wrong while nobody was watching (a failed
scheduled backup, a cleanup that could not remove old backups)."""
from core.errors import NotFound
from models.notifications import Notification


def add(title: str, message: str, event_id: str | None = None) -> Notification:
    return Notification.create(title=title[:512], message=message, event_id=event_id)


def list_notifications(page: int = 1, per_page: int = 25, acknowledged: bool | None = None) -> list[Notification]:
    query = Notification.select().order_by(Notification.creation_time.desc(), Notification.id.desc())
    if acknowledged is not None:
        query = query.where(Notification.acknowledged == acknowledged)
    return list(query.paginate(page, per_page))


def get(notification_id: int | str) -> Notification:
    try:
        found = Notification.get_or_none(Notification.id == int(notification_id))
    except (TypeError, ValueError):
        found = None
    if found is None:
        raise NotFound("No such notification")
    return found


def acknowledge(notification_id: int | str, acknowledged: bool = True) -> None:
    note = get(notification_id)
    Notification.update(acknowledged=bool(acknowledged)).where(Notification.id == note.id).execute()
