"""The mail identity of an app: what the sendmail and recvmail addons give it (Cloudron's
setupSendMail / setupRecvMail), on Berth's own mail server.

An app has one address, `<location>.app@<app domain>` by default (Cloudron's name: the title in
letters and digits when the app sits on the bare domain) or what `configure/mailbox` set; a
default address follows the app when it moves. While either addon is provisioned the address is
reserved by a mail_address row of type "app" (models.mail.AppMailbox says why), so it can never
also be someone's mailbox, alias or list: the unique index refuses the second one (409).

- sendmail: the app logs in to SMTP submission as its address with its sendmail password and may
  send as that address (the sender-login map of mail_server lists it as its own owner);
- recvmail: the address is a mailbox in the snapshot (Postfix accepts and Dovecot delivers mail
  for it) that the app reads over IMAP with its recvmail password.
mail.checkpassword accepts each password only for its own service (SMTP for sendmail, IMAP for
recvmail).

Passwords: Berth stores only their argon2 hashes, so it cannot hand a password out twice: every
call of app_mailbox_credentials (each time the app's container is created) gives the app a fresh
one and the old one stops working at once. Cloudron apps write their mail settings from the
environment at every start, so this is invisible to them; a password never leaves the container's
environment (never logged, never in an event).

Mail not enabled: Cloudron gives the variables whatever the domain's mail settings; so does Berth
(an app declaring sendmail is never refused for it). The mail server runs only while some domain has
mail enabled (mail.sync), and a recvmail mailbox receives mail and logs in only while its own
domain has mail enabled, like any mailbox prepared on a domain before mail is switched on.
"""
import re
import secrets

import peewee

import containers
import domains
import mail_server
from accounts import passwords
from core import config
from core.errors import BadRequest, Conflict
from mail import sync
from mail.addresses import check_name
from models import database
from models.apps import App
from models.mail import APP, AppMailbox, MailAddress

KINDS = ("sendmail", "recvmail")


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"no such mail addon: {kind!r}")
    return kind


def default_name(app: App) -> str:
    """Cloudron's mailbox name for an app: `<location>.app`, or `<title>.app` on a bare domain."""
    base = re.sub(r"[^a-z0-9.-]", "", (app.location or "").lower()).strip(".-")
    if not base:
        base = re.sub(r"[^a-z0-9]", "", str((app.manifest or {}).get("title") or "").lower()) or "app"
    return f"{base}.app"


def address_of(app: App) -> tuple[str, str]:
    """(name, domain) of the app's mail address: the configured one, else the default."""
    row = AppMailbox.get_or_none(AppMailbox.app == app.id)
    name = row.mailbox_name if row is not None and row.mailbox_name else default_name(app)
    domain = row.mailbox_domain if row is not None and row.mailbox_domain else app.domain
    return name, domain


def _reservation(app_id: str) -> MailAddress | None:
    return MailAddress.get_or_none((MailAddress.type == APP) & (MailAddress.owner_id == app_id))


def _reserve(app_id: str, name: str, domain: str) -> None:
    """Make the app's reservation row say `name@domain` (409 when the address is taken)."""
    row = _reservation(app_id)
    if row is not None and (row.name, row.domain_id) == (name, domain):
        return
    try:
        with database.atomic():
            if row is None:
                MailAddress.create(name=name, domain=domain, type=APP, owner_id=app_id, owner_type="app")
            else:
                MailAddress.update(name=name, domain=domain).where(MailAddress.id == row.id).execute()
    except peewee.IntegrityError:
        raise Conflict(f"{name}@{domain} already exists (as a mailbox, alias or list)") from None


def _variables(kind: str, address: str, domain: str, password: str, host: str) -> dict[str, str]:
    cfg = config.get()
    if kind == "sendmail":
        return {"CLOUDRON_MAIL_SMTP_SERVER": host,
                "CLOUDRON_MAIL_SMTP_PORT": str(cfg.mail_submission_port),   # STARTTLS, then AUTH
                # Berth's server has no implicit-TLS submission port: the SMTPS port is the same one
                "CLOUDRON_MAIL_SMTPS_PORT": str(cfg.mail_submission_port),
                "CLOUDRON_MAIL_SMTP_USERNAME": address, "CLOUDRON_MAIL_SMTP_PASSWORD": password,
                "CLOUDRON_MAIL_FROM": address, "CLOUDRON_MAIL_DOMAIN": domain}
    return {"CLOUDRON_MAIL_IMAP_SERVER": host,
            "CLOUDRON_MAIL_IMAP_PORT": str(cfg.mail_imap_port),             # STARTTLS
            "CLOUDRON_MAIL_IMAPS_PORT": str(cfg.mail_imaps_port),
            "CLOUDRON_MAIL_IMAP_USERNAME": address, "CLOUDRON_MAIL_IMAP_PASSWORD": password,
            "CLOUDRON_MAIL_TO": address, "CLOUDRON_MAIL_DOMAIN": domain}


def app_mailbox_credentials(app_id: str, kind: str, network: str | None = None) -> dict[str, str]:
    """The CLOUDRON_MAIL_* variables of addon `kind` for the app, provisioning its identity (and
    re-applying the mail server) as needed; a fresh password each call (see module docs). `network`
    is the Docker network the app's container joins (None: the default bridge): the server
    variables name the host's address there, where the mail server listens."""
    _kind(kind)
    host = containers.network_gateway(network)
    password = secrets.token_urlsafe(36)
    hashed = passwords.hash_password(password)
    with database.atomic():
        app = App.get_by_id(app_id)
        name, domain = address_of(app)
        _reserve(app_id, name, domain)
        row = AppMailbox.get_or_none(AppMailbox.app == app_id)
        new = row is None
        row = row or AppMailbox(app=app_id)
        setattr(row, f"{kind}_hash", hashed)
        row.save(force_insert=new)
        sync.apply()
    return _variables(kind, f"{name}@{domain}", domain, password, host)


def remove_app_mailbox(app_id: str, kind: str) -> None:
    """Take addon `kind` away from the app (uninstall, or an update dropping it): its password stops
    working; with neither addon left the address is free again. The mail a recvmail mailbox held
    is the app's data and goes with it."""
    _kind(kind)
    with database.atomic():
        row = AppMailbox.get_or_none(AppMailbox.app == app_id)
        if row is None:
            return
        setattr(row, f"{kind}_hash", None)
        row.save()
        reserved = _reservation(app_id)
        if reserved is not None and row.sendmail_hash is None and row.recvmail_hash is None:
            reserved.delete_instance()
        sync.apply()
    if kind == "recvmail" and reserved is not None:
        mail_server.delete_maildir(reserved.address)


def set_mailbox(app: App, name: object, domain: object) -> tuple[str, str]:
    """Store the app's mail address (configure/mailbox; None or "" = the default part) and move its
    reservation when it has one. 400 naming the field, 404 for an unknown domain, 409 when the
    address is someone else's. Returns (name, domain) now in force."""
    clean_name = check_name(name, "mailboxName") if name not in (None, "") else None
    if domain not in (None, ""):
        if not isinstance(domain, str):
            raise BadRequest("must be a string", "mailboxDomain")
        clean_domain = domains.get_domain(domain.strip().lower()).domain    # 404 for an unknown domain
    else:
        clean_domain = None
    with database.atomic():
        row = AppMailbox.get_or_none(AppMailbox.app == app.id)
        new = row is None
        row = row or AppMailbox(app=app.id)
        row.mailbox_name, row.mailbox_domain = clean_name, clean_domain
        row.save(force_insert=new)
        wanted = address_of(app)
        taken = MailAddress.get_or_none((MailAddress.name == wanted[0]) & (MailAddress.domain == wanted[1]))
        if taken is not None and not (taken.type == APP and taken.owner_id == app.id):
            raise Conflict(f"{wanted[0]}@{wanted[1]} already exists (as a mailbox, alias or list)")
        if _reservation(app.id) is not None:
            _reserve(app.id, *wanted)
            sync.apply()
    return wanted
