"""Marshmallow schemas: model objects -> the JSON shapes of openapi.yaml.

Field names follow the seed (camelCase); timestamps are ISO-8601 UTC strings.
Nothing secret (hashes, invite tokens) has a field here, so it can never be serialised.
Hot list routes dump records (dicts) through `compile_dump`, which gives what Schema.dump gives
for the same schema at a fraction of the cost.
"""
import datetime

from marshmallow import Schema, fields, missing

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


# ---- precompiled dumping (hot list routes) ------------------------------------------------------

def _identity(value):
    return value


def _text(value):  # fields.String
    if value is None:
        return None
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _text_list(value):
    return None if value is None else [None if v is None else _text(v) for v in value]


def _iso(value):
    """core.times.iso, for the naive datetimes Berth stores, without strftime (a third of the
    cost of a whole user record): isoformat truncates to milliseconds as iso() does."""
    if type(value) is datetime.datetime and value.tzinfo is None and value.year >= 1000:
        return value.isoformat(timespec="milliseconds") + "Z"
    return iso(value)


def _converter(field):
    """A function of the value doing what `field._serialize` does, for the field types whose
    result depends on the value alone; None for the others (they are called as marshmallow
    calls them)."""
    kind = type(field)
    if kind._serialize is fields.Field._serialize:  # Boolean, Raw, ...: the value as it is
        return _identity
    if kind is fields.String:
        return _text
    if kind is fields.List and type(field.inner) is fields.String:
        return _text_list
    if kind is IsoTime:
        return _iso
    return None


def compile_dump(schema: Schema):
    """A function dumping a list of records (dicts holding every attribute the schema reads) as
    `schema.dump(records, many=True)` would: the same keys in the same order, the same values.
    Fields are resolved once here instead of for each value (marshmallow looks up the accessor,
    the default and the data key per field per object). A record missing an attribute, and
    fields of other kinds, go through marshmallow itself."""
    plan = []
    for name, field in schema.dump_fields.items():
        key = field.data_key if field.data_key is not None else name
        attr = field.attribute or name
        convert = _converter(field) if field._CHECK_ATTRIBUTE and "." not in attr else None
        plan.append((key, attr, convert, name, field))
    plan = tuple(plan)

    def dump_one(record):
        out = {}
        for key, attr, convert, name, field in plan:
            if convert is not None and attr in record:
                out[key] = convert(record[attr])
            else:
                value = field.serialize(name, record, accessor=schema.get_attribute)
                if value is not missing:
                    out[key] = value
        return out

    if all(convert is not None for _, _, convert, _, _ in plan):
        dump_one = _straight_line(plan, dump_one)

    def dump_many(records):
        return [dump_one(r) for r in records]

    return dump_many


def _straight_line(plan, fallback):
    """One dict display per record (no loop over the fields), generated from the plan; a record
    missing an attribute goes to `fallback`, which does what marshmallow does about it."""
    namespace = {"fallback": fallback, "KeyError": KeyError}
    items = []
    for n, (key, attr, convert, _, _) in enumerate(plan):
        value = f"record[{attr!r}]"
        if convert is not _identity:
            namespace[f"c{n}"] = convert
            value = f"c{n}({value})"
        items.append(f"{key!r}: {value}")
    source = ("def dump_one(record):\n    try:\n        return {" + ", ".join(items) + "}\n"
              "    except KeyError:\n        return fallback(record)\n")
    exec(compile(source, "<compile_dump>", "exec"), namespace)  # noqa: S102  (keys and attrs from the schema)
    return namespace["dump_one"]


user_records = compile_dump(users)
