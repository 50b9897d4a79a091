"""Backups tag: list platform backups, start a backup or a cleanup, download a backup."""
import flask
from marshmallow import Schema, fields

import backups
from handlers.serialize import IsoTime
from web.request_context import actor
from web.unbuilt import not_implemented

__getattr__ = not_implemented(__name__)


class BackupSchema(Schema):
    id = fields.String()
    creationTime = IsoTime(attribute="creation_time")
    version = fields.String()
    type = fields.String()
    dependsOn = fields.Raw(attribute="depends_on")
    state = fields.String()
    manifest = fields.Raw(allow_none=True)
    format = fields.String()
    preserveSecs = fields.Integer(attribute="preserve_secs")
    size = fields.Integer()


schema = BackupSchema()


def list_backups(page=1, per_page=25):
    return {"backups": schema.dump(backups.list_box_backups(page, per_page), many=True)}


def create_backup(token_info):
    return {"taskId": str(backups.start_full_backup(actor(token_info)))}, 202


def cleanup_backups(token_info):
    return {"taskId": str(backups.start_cleanup(actor(token_info)))}, 202


def download_backup(backup_id):
    name, stream = backups.download(backup_id)
    return flask.Response(stream, mimetype="application/octet-stream",
                          headers={"Content-Disposition": f'attachment; filename="{name}"'})
