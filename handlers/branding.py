"""branding tag of openapi.yaml: the Cloudron name, icon and footer.

The name is the same setting as /settings/cloudron_name, the icon the same file as
/settings/cloudron_avatar and the public /cloudron/avatar (platform_settings.branding).
"""
import flask

import platform_settings
from platform_settings import branding
from web.request_context import actor
from web.unbuilt import not_implemented

__getattr__ = not_implemented(__name__)


def get_cloudron_name():
    return {"name": platform_settings.get("cloudron_name")}


def set_cloudron_name(body, token_info):
    platform_settings.set_cloudron_name(actor(token_info), body["name"])
    return {}, 202


def get_cloudron_avatar():
    # Not cached, so a new icon shows at once (as Cloudron answers it).
    return flask.Response(branding.cloudron_avatar(), mimetype="image/png", headers={"Cache-Control": "no-cache"})


def set_cloudron_avatar(avatar, token_info):
    branding.set_cloudron_avatar(actor(token_info), avatar.read(branding.MAX_AVATAR_BYTES + 1))
    return {}, 202


def get_footer():
    return {"footer": branding.footer()}


def set_footer(body, token_info):
    branding.set_footer(actor(token_info), body["footer"])
    return {}
