"""Marshmallow schemas: model objects -> the JSON shapes of openapi.yaml.

Field names follow the seed (camelCase); timestamps are ISO-8601 UTC strings.
Nothing secret (hashes, invite tokens) has a field here, so it can never be serialised.
"""
from marshmallow import Schema, fields

from core.times import iso


class IsoTime(fields.Field):
    def _serialize(self, value, attr, obj, **kwargs):
        return iso(value)


class UserSchema(Schema):
    id = fields.String()
    username = fields.String(allow_none=True)
    email = fields.String()
    fallbackEmail = fields.String(attribute="fallback_email")
    displayName = fields.String(attribute="display_name")
    groupIds = fields.List(fields.String(), attribute="group_ids")  # set by with_group_ids
    admin = fields.Boolean(attribute="is_admin")
    role = fields.String()
    active = fields.Boolean()
    source = fields.String()
    twoFactorAuthenticationEnabled = fields.Boolean(attribute="totp_enabled")
    creationTime = IsoTime(attribute="creation_time")
    lastLoginTime = IsoTime(attribute="last_login_time")


class ProfileSchema(Schema):
    id = fields.String()
    username = fields.String(allow_none=True)
    email = fields.String()
    fallbackEmail = fields.String(attribute="fallback_email")
    displayName = fields.String(attribute="display_name")
    twoFactorAuthenticationEnabled = fields.Boolean(attribute="totp_enabled")
    role = fields.String()
    admin = fields.Boolean(attribute="is_admin")
    source = fields.String()
    avatarUrl = fields.Method("_avatar_url")

    def _avatar_url(self, user):
        return None


class GroupSchema(Schema):
    id = fields.String()
    name = fields.String()
    source = fields.String()
    userIds = fields.List(fields.String(), attribute="user_ids")  # set by with_member_ids


class TokenSchema(Schema):
    id = fields.String()
    name = fields.String()
    identifier = fields.String(attribute="user_id")
    clientId = fields.String(attribute="client_id")
    expires = fields.Integer()
    scope = fields.Dict()
    creationTime = IsoTime(attribute="creation_time")
    lastUsedTime = IsoTime(attribute="last_used_time")


class AppPasswordSchema(Schema):
    id = fields.String()
    name = fields.String()
    userId = fields.String(attribute="user_id")
    identifier = fields.String()
    creationTime = IsoTime(attribute="creation_time")


class EventSchema(Schema):
    id = fields.String()
    action = fields.String()
    source = fields.Dict()
    data = fields.Dict()
    creationTime = IsoTime(attribute="creation_time")


users = UserSchema()
profile = ProfileSchema()
groups = GroupSchema()
tokens = TokenSchema()
app_passwords = AppPasswordSchema()
events = EventSchema()
