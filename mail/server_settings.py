"""The mailserver routes: settings of the one mail server (location, maximum mail size, spam allow
and block lists, custom spam rules, full-text search) and what it reports (disk use per mailbox,
delivery events).

Full-text search: Cloudron runs Apache Solr for it. Solr is not packaged in Debian, so Berth has
none: the setting answers `enabled: false` with a note, and turning it on is refused (400) rather
than stored and silently not done.
"""
import datetime
import re

import domains
import eventlog
import mail_server
import tasks
from core.errors import BadRequest
from mail import addresses, sync
from models import Setting, database
from models.mail import MAILBOX, MailAddress, MailDomain
from tasks.context import TaskContext

MAX_ACL_ENTRIES = 1000
# An address, a domain or a pattern of them with '*' (`*@spam.test`, `*.spam.test`).
ACL_ENTRY = re.compile(r"[a-z0-9.@*_+=-]{1,254}")
SOLR_NOTE = "Full-text search needs Apache Solr, which Debian does not package; Berth has none."


def _put_and_apply(name: str, value: object) -> None:
    """Store a server setting and apply it in one transaction: a value the server refuses is not kept."""
    with database.atomic():
        Setting.put(name, value)
        sync.apply()


# ---- location ---------------------------------------------------------------------------------------

def get_location() -> dict:
    where = sync.location()
    return {"subdomain": where.get("subdomain", ""), "domain": where.get("domain", "")}


def set_location(actor: eventlog.Actor, subdomain: object, domain: object) -> int:
    """Move the mail server's host name. The setting changes now; the task (changeMailLocation)
    re-applies the server under the new name and rewrites the mail DNS records of enabled domains."""
    if not isinstance(domain, str):
        raise BadRequest("is required", "domain")
    dom = domains.get_domain(domain)
    label = domains.check_label(subdomain, "subdomain")
    Setting.put("mail_location", {"subdomain": label, "domain": dom.domain})  # before the task reads it
    task_id = tasks.start("changeMailLocation", "mail.change_location", {}, locks=["mail"])
    eventlog.record("mail.location", actor, subdomain=label, domain=dom.domain, fqdn=sync.hostname(),
                    taskId=task_id)
    return task_id


def change_location(task: TaskContext, **_: object) -> None:
    """Task body `mail.change_location`: apply the server with its new host name, then the mail
    records of every enabled domain (MX names the host)."""
    from mail import settings, status
    task.progress(20, f"Moving the mail server to {sync.hostname()}")
    with database.atomic():
        sync.apply()
    failed = []
    for md in settings.all_settings():
        if md.enabled:
            task.progress(60, f"Writing the mail DNS records of {md.domain_id}")
            error = status.write_records(md.domain_id)
            if error:
                task.log(f"DNS: {md.domain_id}: {error}")
                failed.append(f"{md.domain_id}: {error}")
    if failed:
        raise RuntimeError("; ".join(failed))
    task.progress(100, "Mail server moved")


# ---- limits and spam ----------------------------------------------------------------------------------

def get_max_email_size() -> int:
    return sync.max_email_size()


def set_max_email_size(actor: eventlog.Actor, size: object) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 2**31 - 1:
        raise BadRequest("must be a number of bytes (1 to 2147483647)", "size")
    _put_and_apply("mail_max_email_size", size)
    eventlog.record("mail.update", actor, maxEmailSize=size)


def _acl(value: object, field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_ACL_ENTRIES:
        raise BadRequest(f"must be a list of at most {MAX_ACL_ENTRIES} addresses or domains", field)
    clean = []
    for entry in value:
        if not isinstance(entry, str) or not ACL_ENTRY.fullmatch(entry.strip().lower()):
            raise BadRequest(f"{entry!r} is not an address, a domain or a pattern of them with '*'", field)
        clean.append(entry.strip().lower())
    return list(dict.fromkeys(clean))


def get_spam_acl() -> dict:
    return sync.spam_acl()


def set_spam_acl(actor: eventlog.Actor, body: dict) -> None:
    """Senders always accepted (whitelist) and always refused (blacklist) by the server."""
    acl = {"whitelist": _acl(body.get("whitelist"), "whitelist"), "blacklist": _acl(body.get("blacklist"), "blacklist")}
    _put_and_apply("mail_spam_acl", acl)
    eventlog.record("mail.update", actor, spamAcl=acl)


def get_spam_custom_config() -> str:
    return Setting.read("mail_spam_custom_config", "")


def set_spam_custom_config(actor: eventlog.Actor, text: object) -> None:
    """Rules handed to the spam filter; rules the filter refuses are a 400 with its words."""
    if not isinstance(text, str) or len(text) > 65536:
        raise BadRequest("must be text of at most 65536 characters", "config")
    try:
        _put_and_apply("mail_spam_custom_config", text)
    except mail_server.MailServerError as e:
        raise BadRequest(f"the spam filter refused it: {e.message}", "config") from None
    eventlog.record("mail.update", actor, spamCustomConfig=len(text))


def get_solr_config() -> dict:
    return {"enabled": False, "running": False, "enoughMemory": True, "note": SOLR_NOTE}


def set_solr_config(actor: eventlog.Actor, enabled: object) -> None:
    if not isinstance(enabled, bool):
        raise BadRequest("must be a boolean", "enabled")
    if enabled:
        raise BadRequest(SOLR_NOTE, "enabled")


# ---- reports ------------------------------------------------------------------------------------------

def usage(domain: str) -> dict:
    """{address: {diskSize}} of every mailbox of `domain` (0 for one that has no mail yet)."""
    dom = addresses.domain_of(domain)
    boxes = [r.address for r in MailAddress.select().where((MailAddress.domain == dom)
                                                            & (MailAddress.type == MAILBOX))]
    try:
        found = mail_server.maildir_usage() if boxes else {}
    except mail_server.MailServerError:
        found = {}
    return {address: {"diskSize": int(found.get(address, 0) or 0)} for address in boxes}


def eventlog_entries(page: int = 1, per_page: int = 25, search: str | None = None,
                     types: str | None = None) -> list[dict]:
    """Delivery events from the server's log, newest first; `types` is a comma separated list of
    event types, `search` a substring of the addresses or the message id."""
    try:
        events = mail_server.delivery_events(None)
    except mail_server.MailServerError:
        events = []
    wanted = {t.strip() for t in (types or "").split(",") if t.strip()}
    term = (search or "").strip().lower()
    local = {m.domain_id for m in MailDomain.select(MailDomain.domain).where(MailDomain.enabled == True)}  # noqa: E712
    found = []
    for event in reversed(events):
        entry = _entry(event, local)
        if wanted and entry["type"] not in wanted:
            continue
        text = " ".join(str(entry.get(k) or "") for k in ("mailFrom", "rcptTo", "messageId")).lower()
        if term and term not in text:
            continue
        found.append(entry)
    start = (page - 1) * per_page
    return found[start:start + per_page]


def _domain_of(address: str | None) -> str:
    return (address or "").rpartition("@")[2].lower()


def _entry(event: dict, local: set[str]) -> dict:
    """The MailEventlogEntry shape from the server's parsed log line ({type, time, from, to,
    queueId, messageId, detail}). Direction: inbound when the recipient is on a mail domain of this
    server (or, with no recipient yet, when the sender is not), else outbound."""
    ts = event.get("ts", event.get("time"))
    if isinstance(ts, (int, float)):
        ts = datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat().replace("+00:00", "Z")
    mail_from, rcpt_to = event.get("mailFrom", event.get("from")), event.get("rcptTo", event.get("to"))
    if rcpt_to:
        direction = "inbound" if _domain_of(rcpt_to) in local else "outbound"
    else:
        direction = "outbound" if _domain_of(mail_from) in local else "inbound"
    skip = {"ts", "time", "type", "from", "to", "mailFrom", "rcptTo", "messageId"}
    return {"ts": ts, "type": event.get("type"), "direction": direction, "messageId": event.get("messageId"),
            "mailFrom": mail_from, "rcptTo": rcpt_to, "details": {k: v for k, v in event.items() if k not in skip}}
