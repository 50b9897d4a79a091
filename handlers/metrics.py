"""Metrics tag: the Prometheus scrape (Berth extension)."""
import flask

from metrics import exposition
from web.unbuilt import not_implemented


def get_metrics(user=None, token_info=None):
    body, content_type = exposition.render()
    return flask.Response(body, 200, {"Content-Type": content_type})


__getattr__ = not_implemented(__name__)
