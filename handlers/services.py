"""services tag of openapi.yaml: the parts of the server Berth runs (system_services)."""
import flask

import system_services
from web import event_stream
from web.request_context import actor
from web.unbuilt import not_implemented

__getattr__ = not_implemented(__name__)


def list_services():
    return {"services": system_services.names()}


def get_service(service):
    return {"service": system_services.get(service)}


def configure_service(service, body, token_info):
    system_services.set_memory_limit(actor(token_info), service, body.get("memory"))
    return {}, 202


def get_logs(service, lines=10, format_="json"):
    return flask.Response(system_services.download_logs(service, lines, format_), mimetype="application/x-logs",
                          headers={"Content-Disposition": 'attachment; filename="log.txt"'})


@event_stream.operation
async def stream_logs(service, lines=10, last_event_id=None, **_):
    # Served on the event loop by web.event_stream.StreamMiddleware, never through Flask.
    return await system_services.follow_logs(service, lines, last_event_id)


def restart_service(service, token_info):
    system_services.restart(actor(token_info), service)
    return {}, 202


def rebuild_service(service, token_info):
    system_services.rebuild(actor(token_info), service)
    return {}, 202
