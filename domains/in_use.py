"""Why a domain cannot be removed: an explicit list of checks, each reading the table that puts
names on domains (apps and the dashboard domain today; mail later gets its own check here).

The checks query the models themselves. They used to be callbacks the apps module registered
when it was imported, so a process that never imported apps let a used domain be deleted.
"""
from collections.abc import Callable

from domains import hostnames
from models import Setting
from models.apps import App


def _used_by_apps(domain: str) -> str | None:
    """An app, alias or redirect on the domain. Stored names are normalised before comparing, so
    rows written before names were stored normalised (`OTHER.test.`) still count."""
    for app in App.select(App.id, App.domain, App.alternate_domains, App.redirect_domains):
        extras = (app.alternate_domains or []) + (app.redirect_domains or [])
        names = [app.domain] + [d.get("domain") for d in extras if isinstance(d, dict)]
        if domain in {hostnames.normalise(n) for n in names if isinstance(n, str)}:
            return f"Domain is used by app {app.id}"
    return None


def _is_dashboard_domain(domain: str) -> str | None:
    """The dashboard domain chosen by the first-run setup (domains.dashboard.ADMIN_DOMAIN)."""
    if Setting.read("admin_domain") == domain:
        return "Cannot remove the dashboard domain"
    return None


CHECKS: tuple[Callable[[str], str | None], ...] = (_used_by_apps, _is_dashboard_domain)


def reason(domain: str) -> str | None:
    """Why `domain` is in use (the first check that objects), or None when it may be removed."""
    domain = hostnames.normalise(domain)
    for check in CHECKS:
        found = check(domain)
        if found:
            return found
    return None
