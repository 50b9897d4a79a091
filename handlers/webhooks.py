"""Webhooks tag: an app's git source and the webhook that deploys its pushes (deployments.webhooks)."""
import flask

from deployments import webhooks
from web.request_context import actor, client_ip
from web.unbuilt import not_implemented

__getattr__ = not_implemented(__name__)


def get_git_source(appid):
    return webhooks.to_api(webhooks.get_source(appid), flask.request.host_url)


def set_git_source(appid, body, token_info):
    source, secret = webhooks.set_source(actor(token_info), appid, body)
    return webhooks.to_api(source, flask.request.host_url, secret)


def receive_app_webhook(appid):
    # The operation declares no body parameter, so no validator parses (or re-encodes) the body:
    # these are the bytes the forge signed (a form-encoded body is kept by web.app._keep_form_bodies).
    raw = flask.request.get_data(cache=True, as_text=False, parse_form_data=False)
    headers = {name.lower(): value for name, value in flask.request.headers.items()}
    return webhooks.receive(appid, headers, raw, client_ip())
