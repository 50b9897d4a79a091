"""Deployments (Apps tag, Berth extension): build and deploy from source or an image, the
deployment history, rollback. The work runs as app tasks (deployments/task_bodies.py)."""
import json

import flask

import apps
import deployments.requests
import deployments.store
import deployments.uploads
from core.errors import BadRequest
from web.request_context import actor
from web.unbuilt import not_implemented

__getattr__ = not_implemented(__name__)


def list_deployments(appid, token_info):
    apps.get_app(appid)
    return {"deployments": deployments.store.listing(appid)}


def get_deployment(appid, deployment_id, token_info):
    apps.get_app(appid)
    return deployments.store.shown(appid, deployment_id)


def _build_args(text):
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        raise BadRequest("must be a JSON object", "buildArgs") from None


def deploy(appid, token_info, **_):
    request = flask.request
    upload = request.files.get("file") if request.mimetype == "multipart/form-data" else None
    if upload is not None:
        apps.get_app(appid)          # 404 before the upload is written anywhere
        build_args = _build_args(request.form.get("buildArgs"))
        path = deployments.uploads.save(upload.stream)
        try:
            task_id = deployments.requests.start_deploy(actor(token_info), appid, {"type": "tarball", "path": path},
                                                        build_args)
        except BaseException:
            deployments.uploads.discard(path)
            raise
        return {"taskId": str(task_id)}, 202
    if request.mimetype == "multipart/form-data":
        raise BadRequest("must be provided as multipart (a source tarball), or send JSON {source}", "file")
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("source"), dict):
        raise BadRequest("is required: {type: git, url, ref} or {type: image, image}", "source")
    if body["source"].get("type") == "tarball":
        raise BadRequest("upload a tarball as multipart/form-data field `file`", "source.type")
    task_id = deployments.requests.start_deploy(actor(token_info), appid, body["source"], body.get("buildArgs"))
    return {"taskId": str(task_id)}, 202


def rollback(appid, body, token_info):
    task_id = deployments.requests.rollback(actor(token_info), appid, body["deploymentId"])
    return {"taskId": str(task_id)}, 202
