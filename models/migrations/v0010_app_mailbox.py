"""Schema version 10: the mail identity of an app (the sendmail and recvmail addons).

Frozen here as it was written (see models/migrations/__init__.py): models/mail.py may change
later without changing what this step creates.
"""
import peewee

from models.db import BaseModel, utcnow


class App(BaseModel):
    """Only the key the new table refers to; the table itself exists since schema version 4."""
    id = peewee.CharField(primary_key=True, max_length=64)


class AppMailbox(BaseModel):
    app = peewee.ForeignKeyField(App, primary_key=True, column_name="app_id", on_delete="CASCADE")
    mailbox_name = peewee.CharField(max_length=199, null=True)
    mailbox_domain = peewee.CharField(max_length=253, null=True)
    sendmail_hash = peewee.TextField(null=True)
    recvmail_hash = peewee.TextField(null=True)
    update_time = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "app_mailbox"


def migrate(db):
    """Create the app_mailbox table."""
    db.create_tables([AppMailbox])
