"""What the mail log says: delivery events for /mailserver/eventlog, and disk use per mailbox.

Postfix writes one line per step of a message, tied together by its queue id: smtpd accepts it
(or rejects a recipient with NOQUEUE), qmgr names the sender, and the delivery agent reports each
recipient (lmtp into a mailbox, smtp to another server) as sent, deferred or bounced; a milter
(rspamd) rejection is logged by cleanup. The log has no year, so the year is the one that puts
the line in the past.
"""
import datetime
import os
import re
import shutil
from collections.abc import Iterable

from mail_server import maps
from mail_server.errors import MailServerError
from mail_server.layout import Layout

LINE = re.compile(r"^(?P<ts>\w{3} [ \d]\d \d\d:\d\d:\d\d) \S+ postfix/(?P<prog>[\w/-]+)\[\d+\]: (?P<text>.*)$")
QUEUED = re.compile(r"^(?P<qid>[0-9A-F]{6,}|[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z]{10,}): (?P<rest>.*)$")
ADDR = r"<(?P<{}>[^>]*)>"


def _time(stamp: str, now: datetime.datetime) -> float:
    parsed = datetime.datetime.strptime(f"{now.year} {stamp}", "%Y %b %d %H:%M:%S")
    if parsed > now + datetime.timedelta(days=1):
        parsed = parsed.replace(year=now.year - 1)
    return parsed.timestamp()


def _field(text: str, name: str) -> str | None:
    m = re.search(rf"\b{name}=<([^>]*)>", text)
    return m.group(1) if m else None


def _detail(text: str) -> str:
    m = re.search(r"\((.*)\)\s*$", text)
    return m.group(1) if m else text


def parse(lines: Iterable[str], now: datetime.datetime | None = None) -> list[dict]:
    """Events from Postfix log lines: {"type": received|delivered|deferred|bounced|rejected,
    "time": epoch seconds, "from", "to", "queueId", "messageId", "detail"}."""
    now = now or datetime.datetime.now()
    senders: dict[str, dict] = {}
    events = []
    for line in lines:
        m = LINE.match(line.rstrip("\n"))
        if not m:
            continue
        when, prog, text = _time(m["ts"], now), m["prog"], m["text"]
        if text.startswith("NOQUEUE: reject:"):
            events.append({"type": "rejected", "time": when, "from": _field(text, "from"), "to": _field(text, "to"),
                           "queueId": None, "messageId": None, "detail": text.split(": ", 2)[-1].split("; from=")[0]})
            continue
        q = QUEUED.match(text)
        if not q:
            continue
        qid, rest = q["qid"], q["rest"]
        info = senders.setdefault(qid, {})
        if rest.startswith("message-id="):
            info["messageId"] = rest[len("message-id="):].strip("<>")
        elif rest.startswith("milter-reject:"):
            events.append({"type": "rejected", "time": when, "from": _field(rest, "from"), "to": _field(rest, "to"),
                           "queueId": qid, "messageId": info.get("messageId"),
                           "detail": rest.split(": ", 2)[-1].split("; from=")[0]})
        elif prog.endswith("qmgr") and rest.startswith("from=<") and "nrcpt=" in rest:
            info["from"] = _field(rest, "from")
            events.append({"type": "received", "time": when, "from": info["from"], "to": None, "queueId": qid,
                           "messageId": info.get("messageId"), "detail": ""})
        elif rest.startswith("to=<") and "status=" in rest:
            status = re.search(r"status=(\w+)", rest).group(1)
            kind = {"sent": "delivered", "bounced": "bounced", "deferred": "deferred"}.get(status)
            if kind:
                events.append({"type": kind, "time": when, "from": info.get("from"), "to": _field(rest, "to"),
                               "queueId": qid, "messageId": info.get("messageId"), "detail": _detail(rest)})
    return events


def delivery_events(layout: Layout, since: float | None = None) -> list[dict]:
    path = os.path.join(layout.root, "logs", "postfix.log")
    try:
        with open(path, errors="replace") as f:
            events = parse(f)
    except FileNotFoundError:
        return []
    return [e for e in events if since is None or e["time"] >= since]


def maildir_usage(layout: Layout) -> dict[str, int]:
    """{address: bytes} of every Maildir (vmail/<domain>/<local part>), symlinks not followed."""
    usage = {}
    vmail = os.path.join(layout.root, "vmail")
    for domain in _dirs(vmail):
        for local in _dirs(os.path.join(vmail, domain)):
            total = 0
            for folder, _dirnames, names in os.walk(os.path.join(vmail, domain, local)):
                for name in names:
                    try:
                        total += os.lstat(os.path.join(folder, name)).st_size
                    except OSError:
                        pass
            usage[f"{local}@{domain}"] = total
    return usage


def delete_maildir(layout: Layout, address: str) -> bool:
    """Remove vmail/<domain>/<local part> of `address`. The folders are written by Dovecot's
    `mail` user, so a symlink found on the way is refused rather than followed."""
    local, domain = maps.address(address).split("@", 1)
    domain_dir = os.path.join(layout.root, "vmail", domain)
    box = os.path.join(domain_dir, local)
    if os.path.islink(domain_dir) or os.path.islink(box):
        raise MailServerError(f"mail server: {address}'s Maildir is a symlink; not removed")
    if not os.path.isdir(box):
        return False
    shutil.rmtree(box)      # never follows symlinks inside (fd-based on Linux)
    return True


def _dirs(path: str) -> list[str]:
    try:
        return sorted(e.name for e in os.scandir(path) if e.is_dir(follow_symlinks=False))
    except OSError:
        return []
