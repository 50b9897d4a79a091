"""Apps tag: install apps and drive their lifecycle (the work runs as app tasks)."""

import flask

import apps
import backups
import domains
from apps import data_folder as app_data_folder
from apps import files as app_files
from apps import logs as app_logs
from apps import mailbox as app_mailbox
from apps import proxy_config as app_proxy
from backups import app_import
from core.errors import BadRequest
from handlers import file_manager
from handlers.app_schemas import full, restricted
from handlers.backups import schema as backup_schema
from web import event_stream
from web.request_context import actor
from web.unbuilt import not_implemented

__getattr__ = not_implemented(__name__)


def _dump(app, schema=full):
    app.fqdn = apps.fqdn(app)
    return schema.dump(app)


def _task(task_id):
    return {"taskId": str(task_id)}, 202


def install_app(body, token_info):
    app_id, task_id = apps.install(actor(token_info), body)
    return {"id": app_id, "taskId": str(task_id)}, 202


# POST /apps (Cloudron 7+): the same install; apps.install also takes `subdomain` and `ports`.
create_app = install_app


def list_apps(token_info):
    who = actor(token_info)
    schema = full if apps.sees_everything(who) else restricted
    return {"apps": [_dump(a, schema) for a in apps.visible_apps(who)]}


def get_app(appid):
    return _dump(apps.get_app(appid))


def uninstall_app(appid, token_info):
    return _task(apps.uninstall(actor(token_info), appid))


def start_app(appid, token_info):
    return _task(apps.start(actor(token_info), appid))


def stop_app(appid, token_info):
    return _task(apps.stop(actor(token_info), appid))


def restart_app(appid, token_info):
    return _task(apps.restart(actor(token_info), appid))


def repair_app(appid, body, token_info):
    return _task(apps.repair(actor(token_info), appid, body))


def update_app(appid, body, token_info):
    return _task(apps.update(actor(token_info), appid, body))


def set_env(appid, body, token_info):
    return _task(apps.configure(actor(token_info), appid, env=body["env"]))


def set_memory_limit(appid, body, token_info):
    return _task(apps.configure(actor(token_info), appid, memoryLimit=body["memoryLimit"]))


def set_debug_mode(appid, body, token_info):
    return _task(apps.configure(actor(token_info), appid, debugMode=body.get("debugMode")))


def set_mounts(appid, body, token_info):
    # each volume at /media/<name>; the container is re-created by the configure task
    return _task(apps.configure(actor(token_info), appid, mounts=body["mounts"]))


def set_location(appid, body, token_info):
    changes = {k: body[k] for k in ("location", "domain", "portBindings", "alternateDomains", "redirectDomains",
                                    "overwriteDns") if k in body}
    return _task(apps.configure(actor(token_info), appid, **changes))



def set_cpu_shares(appid, body, token_info):
    return _task(apps.configure(actor(token_info), appid, cpuShares=body["cpuShares"]))


def set_reverse_proxy(appid, token_info, body=None):
    app_proxy.set_config(actor(token_info), appid, body or {})
    return {}


def set_data_dir(appid, body, token_info):
    return _task(app_data_folder.set_data_dir(actor(token_info), appid, body.get("dataDir")))


def set_mailbox(appid, token_info, body=None):
    return _task(app_mailbox.set_mailbox(actor(token_info), appid, body))

def set_cert(appid, body, token_info):
    app = apps.get_app(appid)
    extra = (app.alternate_domains or []) + (app.redirect_domains or [])
    names = [apps.fqdn(app)] + [domains.fqdn(d.get("subdomain", ""), d["domain"]) for d in extra]
    return _task(domains.acme_orders.set_user_certificate(
        actor(token_info), app.id, names, body["domain"], body.get("subdomain") or "",
        body.get("cert"), body.get("key")))


def set_label(appid, body, token_info):
    # label is x-nullable: null clears it, like "".
    apps.set_fields(actor(token_info), appid, label=(body.get("label") or "").strip())
    return {}


def set_tags(appid, body, token_info):
    apps.set_fields(actor(token_info), appid, tags=body["tags"])
    return {}


def set_access_restriction(appid, body, token_info):
    apps.set_fields(actor(token_info), appid, access_restriction=body.get("accessRestriction"))
    return {}


def set_icon(appid, body, token_info):
    apps.set_icon(actor(token_info), appid, body.get("icon"))
    return {}


def get_icon(appid, token_info, original=False):
    # The access rule of GET /apps: a user outside the app's access restriction gets a 404.
    return flask.Response(apps.read_icon(actor(token_info), appid), mimetype="image/png")


def set_automatic_backup(appid, body, token_info):
    apps.set_fields(actor(token_info), appid, enable_backup=body["enable"])
    return {}


def set_automatic_update(appid, body, token_info):
    apps.set_fields(actor(token_info), appid, enable_automatic_update=body["enable"])
    return {}


def get_logs(appid, lines=10, format_="json"):
    apps.get_app(appid)
    app_logs.check_available(appid)
    return flask.Response(app_logs.download(appid, lines, format_), mimetype="application/x-logs",
                          headers={"Content-Disposition": 'attachment; filename="log.txt"'})


@event_stream.operation
async def stream_logs(appid, lines=10, last_event_id=None, **_):
    # Served on the event loop by web.event_stream.StreamMiddleware, never through Flask.
    import asyncio
    await asyncio.to_thread(apps.get_app, appid)
    return await app_logs.follow(appid, lines, last_event_id)


# ---- backups, restore and clone (domain code in the backups package) -------------------------------------

def list_backups(appid, page=1, per_page=25):
    return {"backups": backup_schema.dump(backups.list_app_backups(appid, page, per_page), many=True)}


def backup_app(appid, token_info):
    return _task(backups.start_app_backup(actor(token_info), appid))


def restore_app(appid, body, token_info):
    return _task(backups.start_app_restore(actor(token_info), appid, body["backupId"]))


def import_app(appid, body, token_info):
    return _task(app_import.start_import(actor(token_info), appid, body))


def clone_app(appid, body, token_info):
    app_id, task_id = backups.start_clone(actor(token_info), appid, body)
    return {"id": app_id, "taskId": str(task_id)}, 201


# ---- exec, files, push and pull (domain code in apps.exec / apps.files) ----------------------

def exec_app(appid, **_):
    # Served on the event loop by web.websocket.ExecMiddleware (Upgrade: tcp); a request that
    # reaches Flask did not ask for the upgrade.
    raise BadRequest("exec requires an HTTP upgrade: send Upgrade: tcp")


def exec_ws(appid, **_):
    # Served on the event loop by web.websocket.ExecMiddleware; only a non-WebSocket request gets here.
    raise BadRequest("execws requires a WebSocket upgrade")


def list_files(appid, file_path, download=False):
    return file_manager.list_files(app_files.browser, appid, file_path, download)


def update_file(appid, file_path, body):
    return file_manager.update_file(app_files.browser, appid, file_path, body)


def create_file(appid, file_path, directory=False, **_):
    return file_manager.create_file(app_files.browser, appid, file_path, directory)


def delete_file(appid, file_path, recursive=True):
    return file_manager.delete_file(app_files.browser, appid, file_path, recursive)


def upload_file(appid, extract=False, **_):
    # `file` names both the query's target path and the multipart part with the content: both
    # are read from the request itself. The body is not validated up front (it is streamed).
    target = flask.request.args.get("file")
    upload = flask.request.files.get("file")
    if upload is None:
        raise BadRequest("must be provided as multipart", "file")
    app_files.push(appid, target, upload.stream, extract)
    return {}, 202


def download_file(appid, file):
    name, chunks, size = app_files.download(appid, file)
    headers = {"Content-Disposition": file_manager.attachment(name)}
    if size is not None:
        headers["Content-Length"] = str(size)
    return flask.Response(chunks, mimetype="application/octet-stream", headers=headers)
