"""The mail server follows the database: after every change Berth builds one snapshot of everything
the server needs (domains, addresses, server settings, the login program) and hands it to
mail_server.apply, which renders, checks and reloads, or raises with the checker's words.

Callers run apply() inside the transaction that made the change, so a configuration the server
refuses (MailServerError, a 424) rolls the change back: the database never says something the
server does not serve (switching mail on is the exception: starting the server is slow, so
mail.settings commits first and switches back when the server refuses). While no domain has mail
enabled, the server does not run and nothing is applied (a mailbox can be prepared on a domain
before mail is switched on).

The login program: Dovecot runs `python -m mail.checkpassword <auth file>` for every login (see
checkpassword.py). Dovecot need not pass Berth's environment on, so the file names the data dir and
the database; it is 0600 (a PostgreSQL URL may carry a password) and rewritten before each apply.
"""
import json
import os
import sys

import mail_server
from core import config, data_paths, files
from core.errors import BadRequest
from models import Setting
from models.mail import ALIAS, APP, LIST, MAILBOX, AppMailbox, MailAddress, MailDomain
from platform_settings import blocklist

DEFAULT_MAX_EMAIL_SIZE = 25 * 1024 * 1024  # Cloudron's default


def auth_file() -> str:
    return os.path.join(data_paths.mail(), "berth-auth.json")


def auth_program() -> list[str]:
    """The argv Dovecot runs to check a login (the checkpassword protocol appends the reply program)."""
    cfg = config.get()
    path = auth_file()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    files.write_atomic(path, json.dumps({"BERTH_DATA_DIR": cfg.data_dir,
                                         "BERTH_DATABASE_URL": cfg.database_url}).encode(), mode=0o600)
    return [sys.executable, "-m", "mail.checkpassword", path]


# ---- the snapshot ---------------------------------------------------------------------------------

def location() -> dict:
    """{subdomain, domain} of the mail server's host name: the stored setting, else the dashboard's
    (`my.<dashboard domain>`), as Cloudron places it."""
    stored = Setting.read("mail_location")
    if stored:
        return stored
    return {"subdomain": "my", "domain": Setting.read("admin_domain") or ""}


def hostname() -> str:
    import domains
    where = location()
    if not where.get("domain"):
        return "localhost"
    dom = domains.find(where["domain"])
    return domains.fqdn(where.get("subdomain", ""), dom or where["domain"])


def max_email_size() -> int:
    return int(Setting.read("mail_max_email_size", DEFAULT_MAX_EMAIL_SIZE))


def spam_acl() -> dict:
    acl = Setting.read("mail_spam_acl") or {}
    return {"whitelist": list(acl.get("whitelist", [])), "blacklist": list(acl.get("blacklist", []))}


def snapshot() -> dict:
    """Everything mail_server.apply needs, from the database (read inside the caller's transaction)."""
    from mail import settings  # settings imports this module
    rows = list(MailAddress.select().order_by(MailAddress.domain, MailAddress.name))
    app_kinds = {m.app_id: m for m in AppMailbox.select()}
    app_rows = [r for r in rows if r.type == APP and r.owner_id in app_kinds]
    acl = spam_acl()
    return {
        "hostname": hostname(),
        "domains": [{"domain": md.domain_id, "enabled": md.enabled, "catchAll": list(md.catch_all or []),
                     "mailFromValidation": md.mail_from_validation, "relay": dict(md.relay or {}),
                     "banner": dict(md.banner or {})} for md in settings.all_settings()],
        "mailboxes": [{"address": r.address, "active": r.active} for r in rows if r.type == MAILBOX]
        + [{"address": r.address, "active": True} for r in app_rows if app_kinds[r.owner_id].recvmail_hash],
        # the sendmail addon: an app may send as its own address (mail/app_mail.py)
        "senders": [{"address": r.address, "logins": [r.address]} for r in app_rows
                    if app_kinds[r.owner_id].sendmail_hash],
        "aliases": [{"address": r.address, "target": f"{r.alias_name}@{r.alias_domain}"}
                    for r in rows if r.type == ALIAS],
        "lists": [{"address": r.address, "members": list(r.members or []), "membersOnly": r.members_only}
                  for r in rows if r.type == LIST and r.active],
        "maxEmailSize": max_email_size(),
        "spamAcl": {"allowlist": acl["whitelist"], "blocklist": acl["blacklist"]},
        "spamCustomConfig": Setting.read("mail_spam_custom_config", ""),
        "clientBlocklist": blocklist.networks(),     # /network/blocklist
        "authProgram": auth_program(),
    }


def any_enabled() -> bool:
    return MailDomain.select().where(MailDomain.enabled == True).exists()  # noqa: E712


def running() -> bool:
    """Is any process of the mail server up (it outlives Berth, like nginx)?"""
    try:
        state = mail_server.status()
    except Exception:  # noqa: BLE001 - an unreadable status means: nothing of ours runs
        return False
    return bool(state.get("running")) or any(p.get("running") for p in (state.get("processes") or {}).values())


def apply() -> None:
    """Hand the current state to the server (see module docs). MailServerError (424) when refused."""
    if not any_enabled() and not running():
        return
    mail_server.apply(snapshot())


def test_relay(relay: dict) -> None:
    """Connect and authenticate to an external relay before it is stored; its refusal is a 400 with
    its own words (the seed's "relay test failed")."""
    try:
        mail_server.test_relay(relay)  # TLS: implicit on 465, else STARTTLS when offered
    except mail_server.MailServerError as e:
        raise BadRequest(f"relay test failed: {e.message}") from None
