"""Cloudron tag: status, activation, login/logout, config, event log."""
import accounts
import backups
import eventlog
import platform_settings
from accounts import sessions
from core import config
from core.errors import NotFound
from handlers import serialize
from web.request_context import actor, client_ip
from web.unbuilt import not_implemented

__getattr__ = not_implemented(__name__)


def _origin():
    cfg = config.get()
    return f"http://{cfg.host}:{cfg.port}"


def get_status():
    return {
        "version": config.get().version, "apiServerOrigin": _origin(), "webServerOrigin": _origin(),
        "provider": "generic", "cloudronName": platform_settings.get("cloudron_name"), "footer": "",
        "adminFqdn": None,
        "activated": accounts.is_activated(),
        "setup": {"active": False, "message": "", "errorMessage": None},
        "restore": backups.restore_status(),
    }


def activate(body):
    user, token, expires = sessions.activate(body, client_ip())
    return {"userId": user.id, "token": token, "expires": expires}, 201


def restore(body):
    backups.start_cloudron_restore(body, client_ip())
    return {}


def login(body):
    token, expires = sessions.login(body.get("username"), body.get("password"), client_ip())
    return {"token": token, "expiresAt": _iso_ms(expires)}


def _iso_ms(ms):
    import datetime
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def logout(token_info):
    sessions.logout(actor(token_info), token_info["token_id"])
    return {}


def get_config(token_info):
    cfg = config.get()
    return {
        "apiServerOrigin": _origin(), "webServerOrigin": _origin(), "adminDomain": "",
        "adminFqdn": "", "mailFqdn": "", "version": cfg.version, "isDemo": False,
        "provider": "generic", "cloudronName": platform_settings.get("cloudron_name"), "footer": "",
        "features": {},
        "uiSpec": {},
    }


def list_events(page=1, per_page=25, action=None, actions=None, search=None):
    rows = eventlog.list_events(page, per_page, action=action, actions=actions, search=search)
    return {"eventlogs": serialize.events.dump(rows, many=True)}


def get_event(event_id):
    event = eventlog.get_event(event_id)
    if event is None:
        raise NotFound("No such event")
    return {"event": serialize.events.dump(event)}
