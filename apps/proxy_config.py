"""configure/reverse_proxy: an app's robots.txt, Content-Security-Policy and HSTS preload.

As on Cloudron this needs no task: the app's vhost is rewritten right away (checked with `nginx -t`
before it replaces the working one, reverse_proxy) and only then stored. robots.txt lives in the
`robots_txt` column (install's `robotsTxt` goes there too), CSP and HSTS preload in
`reverse_proxy_config`. The values are refused (400) when they could break out of nginx's syntax;
reverse_proxy.proxy_settings checks them again when it renders.
"""
import apps
import domains
import eventlog
import reverse_proxy
from core.errors import BadRequest
from models import utcnow
from models.apps import App
from reverse_proxy import proxy_settings

FIELDS = ("robotsTxt", "csp", "hstsPreload")


def of(app: App) -> dict:
    """The app's settings as GET /apps/{id} shows them (`reverseProxyConfig`)."""
    stored = app.reverse_proxy_config or {}
    robots = app.robots_txt or None
    if proxy_settings.problem("robotsTxt", robots):
        robots = None   # stored before it was checked (an install's robotsTxt): never rendered
    return {"robotsTxt": robots, "csp": stored.get("csp") or None,
            "hstsPreload": bool(stored.get("hstsPreload", False))}


def check(body: dict) -> dict:
    """The full settings of a request body (missing fields: null / false, as Cloudron), or 400."""
    config = {"robotsTxt": body.get("robotsTxt"), "csp": body.get("csp"),
              "hstsPreload": body.get("hstsPreload", False)}
    for field in FIELDS:
        why = proxy_settings.problem(field, config[field])
        if why:
            raise BadRequest(why, field)
    return config


def set_config(actor: eventlog.Actor, app_id: str, body: dict) -> None:
    """Check, rewrite the app's vhost (when it has one) with the settings, then store them."""
    app = apps.get_app(app_id)
    config = check(body)
    current = reverse_proxy.vhosts().get(app.id)
    if current is not None:
        spec = {**current, "proxy_config": config}
        reverse_proxy.write_app_vhost(**spec, certificate=domains.certificate_files)
    App.update(robots_txt=config["robotsTxt"] or "", ts=utcnow(),
               reverse_proxy_config={"csp": config["csp"], "hstsPreload": config["hstsPreload"]}).where(
        App.id == app.id).execute()
    eventlog.record("app.configure", actor, appId=app.id, changed=["reverseProxyConfig"])
