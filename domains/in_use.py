"""Why a domain cannot be removed: an explicit list of checks, each reading the table that puts
names on domains (apps, the dashboard domain, mail addresses).

The checks query the models themselves. They used to be callbacks the apps module registered
when it was imported, so a process that never imported apps let a used domain be deleted.
"""
from collections.abc import Callable

from domains import hostnames
from models import Setting
from models.apps import App
from models.mail import MailAddress, MailDomain


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


def _has_mail_addresses(domain: str) -> str | None:
    """Mailboxes, aliases or mailing lists on the domain (models.mail; domains may not import the
    mail package, which sits above it). Their mail would otherwise be lost with the domain."""
    if MailAddress.select().where(MailAddress.domain == domain).exists():
        return "Domain has mailboxes, aliases or mailing lists; remove them first"
    # The mail server serves it until mail is switched off there (which re-applies the server).
    if MailDomain.select().where((MailDomain.domain == domain) & (MailDomain.enabled == True)).exists():  # noqa: E712
        return "Mail is enabled on the domain; disable it first"
    return None


CHECKS: tuple[Callable[[str], str | None], ...] = (_used_by_apps, _is_dashboard_domain, _has_mail_addresses)


def reason(domain: str) -> str | None:
    """Why `domain` is in use (the first check that objects), or None when it may be removed."""
    domain = hostnames.normalise(domain)
    for check in CHECKS:
        found = check(domain)
        if found:
            return found
    return None
