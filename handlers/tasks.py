"""Tasks tag: list, inspect, follow and stop long operations."""
import flask
from marshmallow import Schema, fields

import tasks
from handlers.serialize import IsoTime
from web import event_stream
from web.unbuilt import not_implemented

__getattr__ = not_implemented(__name__)


class TaskSchema(Schema):
    id = fields.String()
    type = fields.String()
    percent = fields.Integer()
    message = fields.String()
    error = fields.Raw(allow_none=True)
    active = fields.Boolean()
    pending = fields.Boolean()
    creationTime = IsoTime(attribute="creation_time")
    ts = IsoTime()
    result = fields.Raw(allow_none=True)
    success = fields.Boolean()


_task = TaskSchema()


def list_tasks(page=1, per_page=25, type_=None):
    return {"tasks": _task.dump(tasks.list_tasks(page, per_page, type_), many=True)}


def get_task(task_id):
    return _task.dump(tasks.get(task_id))


def get_logs(task_id, lines=10, format_="json"):
    return flask.Response(tasks.read_log(task_id, lines, format_), mimetype="application/x-logs",
                          headers={"Content-Disposition": 'attachment; filename="log.txt"'})


def stop_task(task_id):
    tasks.stop(task_id)
    return None, 204


@event_stream.operation
async def stream_logs(task_id, lines=10, last_event_id=None, **_):
    # Served on the event loop by web.event_stream.StreamMiddleware, never through Flask.
    return await tasks.follow_log(int(task_id), lines, last_event_id)
