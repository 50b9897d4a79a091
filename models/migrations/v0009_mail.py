"""Schema version 9: mail domains' settings and mail addresses (mailboxes, aliases, lists).

Frozen here as they were written (see models/migrations/__init__.py): models/mail.py may change
later without changing what this step creates.
"""
import peewee

from models.db import BaseModel, JSONField, utcnow


class Domain(BaseModel):
    """Only the key the new tables refer to; the table itself exists since schema version 2."""
    domain = peewee.CharField(primary_key=True, max_length=253)


class MailDomain(BaseModel):
    domain = peewee.ForeignKeyField(Domain, primary_key=True, column_name="domain", on_delete="CASCADE")
    enabled = peewee.BooleanField(default=False)
    mail_from_validation = peewee.BooleanField(default=True)
    catch_all = JSONField(default=list)
    relay = JSONField(default=lambda: {"provider": "cloudron-smtp"})
    banner = JSONField(default=lambda: {"text": "", "html": ""})


class MailAddress(BaseModel):
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


def migrate(db):
    """Create the mail tables."""
    db.create_tables([MailDomain, MailAddress])
