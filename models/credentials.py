"""API tokens, app passwords and the record of failed logins (for throttling)."""
import peewee

from .db import BaseModel, JSONField, utcnow
from .identity import User


class Token(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=64)
    token_hash = peewee.CharField(max_length=64, unique=True)  # sha256 hex of the secret
    user = peewee.ForeignKeyField(User, on_delete="CASCADE", backref="tokens")
    name = peewee.CharField(max_length=64, default="")
    client_id = peewee.CharField(max_length=32, default="cid-sdk")
    scope = JSONField(default=lambda: {"*": "rw"})
    expires = peewee.BigIntegerField()  # epoch milliseconds, as the API shows it
    creation_time = peewee.DateTimeField(default=utcnow)
    last_used_time = peewee.DateTimeField(null=True)


class AppPassword(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=64)
    user = peewee.ForeignKeyField(User, on_delete="CASCADE", backref="app_passwords")
    name = peewee.CharField(max_length=64)
    identifier = peewee.CharField(max_length=128)
    password_hash = peewee.CharField(max_length=64)  # sha256 hex; the secret is random
    creation_time = peewee.DateTimeField(default=utcnow)


class LoginFailure(BaseModel):
    key = peewee.CharField(max_length=300, index=True)  # "user:<name>" or "ip:<address>"
    at = peewee.DoubleField(index=True)  # epoch seconds
