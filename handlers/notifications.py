"""Notifications tag: what admins should know about (failed backups, ...)."""
from marshmallow import Schema, fields

from eventlog import notifications
from handlers.serialize import IsoTime
from web.unbuilt import not_implemented

__getattr__ = not_implemented(__name__)


class NotificationSchema(Schema):
    id = fields.String()
    eventId = fields.String(attribute="event_id", allow_none=True)
    title = fields.String()
    message = fields.String()
    creationTime = IsoTime(attribute="creation_time")
    acknowledged = fields.Boolean()


_schema = NotificationSchema()


def list_notifications(page=1, per_page=25, acknowledged=None):
    rows = notifications.list_notifications(page, per_page, acknowledged)
    return {"notifications": _schema.dump(rows, many=True)}


def get_notification(notification_id):
    return {"notification": _schema.dump(notifications.get(notification_id))}


def acknowledge_notification(notification_id, body):
    notifications.acknowledge(notification_id, body["acknowledged"])
    return None, 204
