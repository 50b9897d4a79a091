"""The login check Dovecot runs for IMAP and for SMTP submission (SASL): the checkpassword protocol.

    python -m mail.checkpassword <auth file> <reply program>

Dovecot writes "login\\0password\\0..." to file descriptor 3. On success the program executes the
reply program (the last argument) with USER set to the mailbox address, so the mail store and
Postfix's sender checks see the address whatever was typed; on failure it exits 1 (3: no such
mailbox, for userdb lookups), and 111 when it cannot decide (database down: a temporary failure,
never a yes). The auth file (mail.sync) names the data dir and the database: Dovecot starts the
program without Berth's environment.

Who may log in, with their Berth password or one of their app passwords for `mail`:
- login `name@domain` (a mailbox on a domain with mail enabled, the mailbox active): the owning
  user; for a mailbox owned by a group, any member of the group, each with their own password
  (Cloudron's shared mailboxes; up to MAX_GROUP_TRIES members are tried, password hashing is slow);
- login `username`: that user, into the first mailbox they own (by domain, then name);
- login `<app address>` (the sendmail/recvmail addons, mail/app_mail.py): the app, with the password
  of the addon that serves the service Dovecot names in SERVICE (smtp: sendmail, imap: recvmail,
  the latter only while the domain has mail enabled).
Users imported from an external LDAP directory (accounts.external_ldap) log in with their
directory password: the program binds to the directory as for a login to Berth.
The user must exist and be active: deactivating or deleting a user refuses their next login at
once, since nothing is cached. Passwords are never written anywhere: the program compares them
with the argon2 hashes (and app passwords with their SHA-256 hashes) in Berth's database.
"""
import json
import os
import sys

from accounts import external_ldap, passwords
from accounts.tokens import hash_secret
from models import AppPassword, GroupMember, User
from models.mail import APP, MAILBOX, AppMailbox, MailAddress, MailDomain

OK, FAILED, UNKNOWN, TEMPORARY = 0, 1, 3, 111
MAX_GROUP_TRIES = 50
APP_PASSWORD_IDENTIFIER = "mail"
SERVICE_ADDONS = {"smtp": ("sendmail",), "imap": ("recvmail",)}


def _password_ok(user: User, password: str) -> bool:
    if not user.active:
        return False
    # a directory user's password is the directory's: a bind, as for a login to Berth itself
    if external_ldap.check_password(user, user.password_hash or passwords.DUMMY_HASH, password):
        return True
    return AppPassword.select().where((AppPassword.user == user.id)
                                      & (AppPassword.identifier == APP_PASSWORD_IDENTIFIER)
                                      & (AppPassword.password_hash == hash_secret(password))).exists()


def _enabled(domain: str) -> bool:
    return MailDomain.select().where((MailDomain.domain == domain) & (MailDomain.enabled == True)).exists()  # noqa: E712


def _owners(box: MailAddress) -> list[User]:
    if box.owner_type == "user":
        return list(User.select().where(User.id == box.owner_id))
    return list(User.select().join(GroupMember, on=(GroupMember.user == User.id))
                .where(GroupMember.group == box.owner_id).order_by(User.id).limit(MAX_GROUP_TRIES))


def find_mailbox(login: str) -> MailAddress | None:
    """The active mailbox `login` names on an enabled domain, or None."""
    name, _, domain = login.partition("@")
    box = MailAddress.get_or_none((MailAddress.name == name) & (MailAddress.domain == domain)
                                  & (MailAddress.type == MAILBOX))
    if box is None or not box.active or not _enabled(box.domain_id):
        return None
    return box


def app_identity(login: str, service: str | None = None) -> tuple[str, list[str]] | None:
    """(address, password hashes it may use for `service`) when `login` is an app's address
    (a service Berth does not know gets both addons' hashes), else None."""
    name, _, domain = login.partition("@")
    row = MailAddress.get_or_none((MailAddress.name == name) & (MailAddress.domain == domain)
                                  & (MailAddress.type == APP))
    ident = AppMailbox.get_or_none(AppMailbox.app == row.owner_id) if row is not None else None
    if ident is None:
        return None
    kinds = SERVICE_ADDONS.get(service or "", ("sendmail", "recvmail"))
    hashes = [getattr(ident, f"{kind}_hash") for kind in kinds
              if getattr(ident, f"{kind}_hash") and (kind != "recvmail" or _enabled(row.domain_id))]
    return row.address, hashes


def _first_mailbox_of(user: User) -> MailAddress | None:
    for box in MailAddress.select().where((MailAddress.type == MAILBOX) & (MailAddress.owner_type == "user")
                                          & (MailAddress.owner_id == user.id)).order_by(MailAddress.domain,
                                                                                         MailAddress.name):
        if box.active and _enabled(box.domain_id):
            return box
    return None


def check(login: str, password: str, service: str | None = None) -> str | None:
    """The mailbox address `login` may use with `password`, or None (see module docs)."""
    login = (login or "").strip().lower()
    if not login or not password:
        return None
    if "@" in login:
        box = find_mailbox(login)
        app = app_identity(login, service) if box is None else None
        if app is not None and app[1]:
            return app[0] if any(passwords.verify_password(h, password) for h in app[1]) else None
        candidates = _owners(box) if box is not None else []
    else:
        user = User.get_or_none(User.username == login)
        box = _first_mailbox_of(user) if user is not None else None
        candidates = [user] if box is not None else []
    if not candidates:
        passwords.verify_password(passwords.DUMMY_HASH, password)  # same cost as a known login
        return None
    if any(_password_ok(user, password) for user in candidates):
        return box.address
    return None


def exists(login: str) -> str | None:
    """For userdb lookups (no password; Dovecot sets AUTHORIZED=1): the address, when it names one."""
    login = (login or "").strip().lower()
    if "@" in login:
        box = find_mailbox(login)
        app = app_identity(login, "imap") if box is None else None
        if app is not None and app[1]:
            return app[0]
    else:
        user = User.get_or_none(User.username == login)
        box = _first_mailbox_of(user) if user is not None and user.active else None
    return box.address if box is not None else None


def _read_fd3() -> tuple[str, str]:
    data = b""
    with os.fdopen(3, "rb") as f:
        while len(data) < 4096:
            chunk = f.read(4096 - len(data))
            if not chunk:
                break
            data += chunk
    parts = data.split(b"\0")
    if len(parts) < 2:
        raise ValueError("malformed checkpassword input")
    return parts[0].decode("utf-8", "replace"), parts[1].decode("utf-8", "replace")


def _open(auth_file: str) -> None:
    from core import config
    from models import open_database
    with open(auth_file) as f:
        settings = json.load(f)
    config.use(config.load({k: str(v) for k, v in settings.items() if k.startswith("BERTH_")}))
    open_database(config.get().database_url)


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        sys.stderr.write("usage: python -m mail.checkpassword <auth file> <reply program>\n")
        return 2
    auth_file, reply = argv[1], argv[2:]
    env = dict(os.environ)  # handed on to the reply program (the protocol's output)
    try:
        login, password = _read_fd3()
        _open(auth_file)
        if env.get("AUTHORIZED") == "1":   # userdb lookup: no password to check
            address = exists(login)
            if address is None:
                return UNKNOWN
            env["AUTHORIZED"] = "2"
        else:
            address = check(login, password, env.get("SERVICE"))
            if address is None:
                return FAILED
    except Exception as e:  # noqa: BLE001 - cannot decide: temporary failure, never a yes
        sys.stderr.write(f"berth checkpassword: {type(e).__name__}: {e}\n")  # Dovecot logs it
        return TEMPORARY
    env["USER"] = address
    os.execve(reply[0], reply, env)
    return TEMPORARY  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv))
