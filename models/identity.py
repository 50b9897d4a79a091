"""Users, groups and group membership."""
import peewee

from .db import BaseModel, utcnow

ROLES = ("owner", "admin", "mailmanager", "usermanager", "user")
# Higher index = fewer rights; a role may manage roles below it.
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}


class User(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=64)
    username = peewee.CharField(max_length=199, null=True, unique=True)
    email = peewee.CharField(max_length=254, unique=True)
    fallback_email = peewee.CharField(max_length=254, default="")
    display_name = peewee.CharField(max_length=512, default="")
    password_hash = peewee.CharField(max_length=256, null=True)
    role = peewee.CharField(max_length=32, default="user", index=True)
    active = peewee.BooleanField(default=True)
    source = peewee.CharField(max_length=16, default="")
    invite_token_hash = peewee.CharField(max_length=128, null=True)
    has_avatar = peewee.BooleanField(default=False)
    creation_time = peewee.DateTimeField(default=utcnow)
    last_login_time = peewee.DateTimeField(null=True)
    # Listing order (by username; users without one, e.g. invited, last by email) kept in an
    # indexed column so a page of a large directory is an index walk, not a sort of every row.
    sort_key = peewee.CharField(max_length=260, default="", index=True)
    # TOTP two-factor authentication (accounts/totp.py, schema version 11): the secret is sealed
    # with a key outside the database; it is pending until totp_enabled. totp_last_step is the
    # time step of the last accepted code, so a code works once.
    totp_secret = peewee.TextField(null=True)
    totp_enabled = peewee.BooleanField(default=False)
    totp_last_step = peewee.BigIntegerField(null=True)
    # Where a user with source "ldap" lives in the external directory (schema version 12).
    external_dn = peewee.CharField(max_length=1024, null=True, index=True)

    @staticmethod
    def sort_key_for(username, email):
        return username if username else "~" + (email or "")

    def save(self, *args, **kwargs):
        self.sort_key = self.sort_key_for(self.username, self.email)
        return super().save(*args, **kwargs)

    @property
    def is_admin(self):
        return self.role in ("owner", "admin")


class Group(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=64)
    name = peewee.CharField(max_length=200, unique=True)
    source = peewee.CharField(max_length=16, default="")
    external_dn = peewee.CharField(max_length=1024, null=True, index=True)  # source "ldap" (schema 12)
    creation_time = peewee.DateTimeField(default=utcnow)


class GroupMember(BaseModel):
    group = peewee.ForeignKeyField(Group, on_delete="CASCADE", backref="memberships")
    user = peewee.ForeignKeyField(User, on_delete="CASCADE", backref="memberships")

    class Meta:
        primary_key = peewee.CompositeKey("group", "user")
        indexes = ((("user", "group"), False),)
