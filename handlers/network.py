"""network tag of openapi.yaml: the client block list (platform_settings.blocklist)."""
import flask

from mail import sync as mail_sync
from platform_settings import blocklist
from web.request_context import actor, client_ip
from web.unbuilt import not_implemented

__getattr__ = not_implemented(__name__)


def get_blocklist():
    return {"blocklist": blocklist.get()}


def _caller_addresses():
    """The peer of this connection and the addresses proxies in front say the client has. The
    headers are only used to refuse (a list covering any of them is a 409), so a client lying in
    them can only stop its own request; through the managed nginx, X-Real-IP is the real client."""
    headers = flask.request.headers
    forwarded = headers.get("X-Forwarded-For", "").split(",") + [headers.get("X-Real-IP", "")]
    return [client_ip() or ""] + [a.strip() for a in forwarded if a.strip()][:16]


def set_blocklist(body, token_info):
    blocklist.save(actor(token_info), body["blocklist"], _caller_addresses(), apply_mail=mail_sync.apply)
    return {}
