"""Mail: the settings of each mail domain and every address Berth's mail server answers for.

Mailboxes, aliases and mailing lists share one table (`mail_address`, as Cloudron keeps them in
one): a name is unique per domain across all three, so "an alias that clashes with a mailbox"
and "a list named like a mailbox" are refused by one unique index, even between two concurrent
requests, not by a read-then-write race.
"""
import peewee

from .apps import App
from .db import BaseModel, JSONField, utcnow
from .domains import Domain

MAILBOX, ALIAS, LIST = "mailbox", "alias", "list"


class MailDomain(BaseModel):
    """Mail settings of a domain. A domain without a row has the seed's defaults (mail.settings
    fills them in), so adding a domain needs no mail code; removing it removes the row."""
    domain = peewee.ForeignKeyField(Domain, primary_key=True, column_name="domain", on_delete="CASCADE")
    enabled = peewee.BooleanField(default=False)
    mail_from_validation = peewee.BooleanField(default=True)
    catch_all = JSONField(default=list)
    relay = JSONField(default=lambda: {"provider": "cloudron-smtp"})
    banner = JSONField(default=lambda: {"text": "", "html": ""})


class MailAddress(BaseModel):
    """One address: `type` says which fields mean something. A mailbox has an owner (a user or a
    group); an alias points at a mailbox (possibly on another domain); a list has members. The
    domain cannot be removed while an address is on it (domains.in_use, and the foreign key)."""
    id = peewee.AutoField()
    name = peewee.CharField(max_length=199)
    domain = peewee.ForeignKeyField(Domain, column_name="domain", on_delete="RESTRICT")
    type = peewee.CharField(max_length=16, index=True)
    owner_id = peewee.CharField(max_length=128, null=True, index=True)
    owner_type = peewee.CharField(max_length=16, null=True)
    alias_name = peewee.CharField(max_length=199, null=True)
    alias_domain = peewee.CharField(max_length=253, null=True)
    members = JSONField(default=list)
    members_only = peewee.BooleanField(default=False)
    active = peewee.BooleanField(default=True)
    creation_time = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "mail_address"
        indexes = ((("name", "domain"), True), (("alias_name", "alias_domain"), False))

    @property
    def address(self) -> str:
        return f"{self.name}@{self.domain_id}"


APP = "app"     # an app's address (sendmail/recvmail): reserved in mail_address, owner_type "app"


class AppMailbox(BaseModel):
    """The mail identity of an app (the sendmail and recvmail addons, mail.app_mail): the address
    it was given (None: the default, `<location>.app` on the app's domain) and the argon2 hashes of
    the password of each addon it has (None: not provisioned). The address itself is reserved by
    a mail_address row of type APP while either addon is provisioned, so the one unique index
    keeps it apart from every mailbox, alias and list."""
    app = peewee.ForeignKeyField(App, primary_key=True, column_name="app_id", on_delete="CASCADE")
    mailbox_name = peewee.CharField(max_length=199, null=True)
    mailbox_domain = peewee.CharField(max_length=253, null=True)
    sendmail_hash = peewee.TextField(null=True)
    recvmail_hash = peewee.TextField(null=True)
    update_time = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "app_mailbox"
