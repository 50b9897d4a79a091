"""Cloudron tag: status, first-run setup, activation, login/logout, config, event log, the public
icon, languages and password reset requests."""
import flask

import accounts
import backups
import domains
import eventlog
import platform_settings
import platform_update.updater
import system_monitor
from accounts import activation_lock, external_ldap, sessions
from core import config
from core.errors import Conflict, NotFound
from handlers import serialize
from mail import account_mail
from platform_settings import branding
from web import event_stream
from web.request_context import actor, client_ip
from web.unbuilt import not_implemented

__getattr__ = not_implemented(__name__)


def _origin():
    cfg = config.get()
    return f"http://{cfg.host}:{cfg.port}"


def get_status():
    return {
        "version": config.get().version, "apiServerOrigin": _origin(), "webServerOrigin": _origin(),
        "provider": "generic", "cloudronName": platform_settings.get("cloudron_name"), "footer": branding.footer(),
        "adminFqdn": domains.dashboard.admin_fqdn(),
        "activated": accounts.is_activated(),
        "setup": {"active": False, "message": "", "errorMessage": None},
        "restore": backups.restore_status(),
    }


def setup(body):
    # Refused once activated ("Already setup", as Cloudron says) and while a whole-Cloudron
    # restore holds the activation lock; before that a repeated setup changes the domain.
    if accounts.is_activated():
        raise Conflict("Already setup")
    if activation_lock.is_held():
        raise Conflict("Already setting up or restoring")
    domains.dashboard.setup(actor(), body["dnsConfig"])
    return {}


def activate(body):
    user, token, expires = sessions.activate(body, client_ip())
    return {"userId": user.id, "token": token, "expires": expires}, 201


def restore(body):
    backups.start_cloudron_restore(body, client_ip())
    return {}


def login(body):
    token, expires = sessions.login(body.get("username"), body.get("password"), client_ip(),
                                    body.get("totpToken"))
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
    admin_fqdn = domains.dashboard.admin_fqdn() or ""
    return {
        "apiServerOrigin": _origin(), "webServerOrigin": _origin(),
        "adminDomain": domains.dashboard.admin_domain() or "",
        "adminFqdn": admin_fqdn, "mailFqdn": admin_fqdn, "version": cfg.version, "isDemo": False,
        "provider": "generic", "cloudronName": platform_settings.get("cloudron_name"), "footer": branding.footer(),
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


def get_avatar():
    # Public (login page, favicon); not cached, so a new branding icon shows at once.
    return flask.Response(branding.cloudron_avatar(), mimetype="image/png", headers={"Cache-Control": "no-cache"})


def list_languages():
    return {"languages": branding.languages()}


def request_password_reset(body=None):
    # 202 whether or not a user matched: the answer must not reveal which accounts exist.
    account_mail.request_password_reset((body or {}).get("identifier"), client_ip())
    return {}, 202


def renew_certs(body=None, token_info=None):
    return {"taskId": str(domains.acme_orders.renew_now(actor(token_info), (body or {}).get("domain")))}, 202


def sync_dns(body=None, token_info=None):
    body = body or {}
    return {"taskId": str(domains.dns_records.start_sync(actor(token_info), body.get("domain"), body.get("type")))}, 201


def get_server_ip():
    return {"ip": domains.public_address.server_ip()}


def prepare_dashboard_domain(body, token_info):
    return {"taskId": str(domains.dashboard.prepare(actor(token_info), body["domain"]))}, 202


def set_dashboard_domain(body, token_info):
    domains.dashboard.set_domain(actor(token_info), body["domain"])
    return None, 204


# ---- updates of Berth itself and reboot (platform_update) ----------------------------------------

def get_update():
    return {"update": platform_update.updater.update_info()}


def check_for_updates(token_info):
    return {"update": platform_update.updater.check_for_updates(actor(token_info))}


def start_update(token_info, body=None):
    return {"taskId": str(platform_update.updater.start_update(actor(token_info), body or {}))}, 202


def get_reboot_required():
    return {"rebootRequired": platform_update.updater.reboot_required()}


def reboot(token_info):
    platform_update.updater.reboot(actor(token_info))
    return {}, 202


def sync_external_ldap(token_info):
    return {"taskId": str(external_ldap.start_sync(actor(token_info)))}, 202


# ---- the machine: disks, memory, graphs, Berth's own logs (system_monitor) ----------------------

def get_disks():
    return system_monitor.disks()


def get_memory():
    return system_monitor.memory()


def get_graphs(target=None, from_=None, until=None, no_null_points=False, format_="json"):
    return system_monitor.graphs(target, from_, until, bool(no_null_points))


def get_logs(unit, lines=10, format_="json"):
    return flask.Response(system_monitor.download_logs(unit, lines, format_), mimetype="application/x-logs",
                          headers={"Content-Disposition": 'attachment; filename="log.txt"',
                                   "Cache-Control": "no-cache"})


@event_stream.operation
async def stream_logs(unit, lines=10, last_event_id=None, **_):
    # Served on the event loop by web.event_stream.StreamMiddleware, never through Flask.
    return await system_monitor.follow_logs(unit, lines, last_event_id)
