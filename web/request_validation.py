"""How Berth reads JSON request bodies before Connexion validates them against the spec.

Liberal in what it accepts, as Cloudron clients expect: an empty body means `{}`, and a
top-level field sent as null is treated as absent unless the spec marks it `x-nullable`.
Validation errors name the field: `username: 'a b' does not match '^[a-zA-Z0-9.-]+$'`, and
quote at most QUOTE_CHARS of the offending value: the answer to a huge value stays small.
"""
import json

from connexion.exceptions import BadRequestProblem
from connexion.validators import JSONRequestBodyValidator, MultiPartFormDataValidator, ParameterValidator
from jsonschema import Draft4Validator, ValidationError
from starlette.datastructures import Headers
from starlette.formparsers import MultiPartException

QUOTE_CHARS = 64       # most characters of an offending value quoted back
MESSAGE_CHARS = 512    # most characters of a whole message (names and keys can be long too)
# What SQLite (and PostgreSQL's bigint) can store: a larger integer anywhere in a request is
# refused with 400 here rather than failing with OverflowError in the database driver.
INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1


def short_message(error):
    """jsonschema's message with the offending value (quoted whole, `'aaaa…' is too long`)
    cut to QUOTE_CHARS, and the whole message to MESSAGE_CHARS."""
    message = error.message
    quoted = repr(error.instance)
    if len(quoted) > QUOTE_CHARS + 1 and quoted in message:
        message = message.replace(quoted, quoted[:QUOTE_CHARS] + "…")
    return message if len(message) <= MESSAGE_CHARS else message[:MESSAGE_CHARS] + "…"


def field_message(error):
    """`<field>: <reason>` for a jsonschema ValidationError."""
    path = ".".join(str(p) for p in error.absolute_path)
    if len(path) > QUOTE_CHARS:
        path = path[:QUOTE_CHARS] + "…"
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        field = f"{path}.{missing}" if path else missing
        return f"{field}: is required"
    message = short_message(error)
    return f"{path}: {message}" if path else message


def out_of_range(value):
    """The path (a tuple) of the first integer in `value` beyond 64 bits, or None. Iterative:
    a body nested as deep as the JSON parser allows must not exhaust the stack here."""
    pending = [((), value)]
    while pending:
        path, item = pending.pop()
        if isinstance(item, int) and not isinstance(item, bool):
            if not INT64_MIN <= item <= INT64_MAX:
                return path
        elif isinstance(item, dict):
            pending.extend((path + (k,), v) for k, v in item.items())
        elif isinstance(item, list):
            pending.extend((path + (i,), v) for i, v in enumerate(item))
    return None


class LiberalJSONBodyValidator(JSONRequestBodyValidator):
    MUTABLE_VALIDATION = True  # pass the cleaned body (not the raw bytes) on to the handler

    async def wrap_receive(self, receive, *, scope):
        headers = Headers(scope=scope)
        if "content-type" not in headers:
            # Connexion validates a body without Content-Type as the operation's first `consumes`
            # (JSON) but then hands the handler raw bytes: say it is JSON for both.
            scope = dict(scope, headers=list(scope["headers"]) + [(b"content-type", b"application/json")])
        if "content-length" not in headers and "chunked" in headers.get("transfer-encoding", "").lower():
            # Connexion takes a body without Content-Length for no body at all: read the chunked
            # body (web.request_limits bounds it) and pass it on as a body of known length.
            chunks = []
            while True:
                message = await receive()
                chunks.append(message.get("body", b""))
                if message["type"] != "http.request" or not message.get("more_body"):
                    break
            raw = b"".join(chunks)
            scope = dict(scope, headers=[(k, v) for k, v in scope["headers"] if k != b"transfer-encoding"]
                         + [(b"content-length", str(len(raw)).encode())])
            receive = self._insert_messages(receive, messages=[{"type": "http.request", "body": raw}])
        elif not int(headers.get("content-length", 0) or 0):
            receive, scope = self._insert_body(receive, body={}, scope=scope)
        return await super().wrap_receive(receive, scope=scope)

    async def _parse(self, stream, scope):
        try:
            raw = b"".join([chunk async for chunk in stream]).decode(self._encoding)
        except (UnicodeDecodeError, LookupError):
            raise BadRequestProblem(detail=f"Failed to parse body: it is not valid {self._encoding}") from None
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError) as e:  # JSONDecodeError, too many digits, too deep
            raise BadRequestProblem(detail=f"Failed to parse body: {str(e)[:MESSAGE_CHARS]}") from None
        if isinstance(body, dict):
            props = (self._schema or {}).get("properties") or {}
            body = {k: v for k, v in body.items()
                    if v is not None or (props.get(k) or {}).get("x-nullable")}
        return body

    def _validate(self, body):
        where = out_of_range(body)
        if where is not None:
            field = ".".join(str(p) for p in where)[:QUOTE_CHARS]
            raise BadRequestProblem(detail=f"{field or 'body'}: is beyond the 64-bit integer range")
        try:
            self._validator.validate(body)
        except ValidationError as error:
            raise BadRequestProblem(detail=field_message(error)) from None
        return body


class CheckedMultiPartValidator(MultiPartFormDataValidator):
    """An upload without a multipart Content-Type (or without its boundary), or one the parser
    cannot read, answers 400 instead of crashing in the parser (KeyError) or the handler."""

    async def _parse(self, stream, scope):
        content_type = Headers(scope=scope).get("content-type", "")
        if not content_type.lower().startswith("multipart/form-data") or "boundary=" not in content_type:
            raise BadRequestProblem(detail="Content-Type: must be multipart/form-data with a boundary")
        try:
            return await super()._parse(stream, scope)
        except MultiPartException as e:
            raise BadRequestProblem(detail=f"Failed to parse body: {e.message}") from None

    # Operations declaring a large `x-max-body-bytes` (the upload routes) are not parsed here:
    # Connexion's validation keeps every message of a body in memory to replay it to Flask. Their
    # handler reads the body as a stream (Werkzeug spools file parts to disk) and checks its parts.
    # Filled by web.app.create_app.
    STREAMED: set = set()

    async def wrap_receive(self, receive, *, scope):
        routing = (scope.get("extensions") or {}).get("connexion_routing") or {}
        if routing.get("operation_id") in self.STREAMED:
            content_type = Headers(scope=scope).get("content-type", "")
            if "boundary=" not in content_type:
                raise BadRequestProblem(detail="Content-Type: must be multipart/form-data with a boundary")
            return receive, scope
        return await super().wrap_receive(receive, scope=scope)


class NamedParameterValidator(ParameterValidator):
    """Query/path/header errors as `<name>: <reason>` (Connexion's default dumps the schema)."""

    @staticmethod
    def validate_parameter(parameter_type, value, param, param_name=None):
        if value is None:
            if param.get("required"):
                return f"{param['name']}: {parameter_type} parameter is required"
            return None
        if out_of_range(value) is not None:
            return f"{param['name']}: is beyond the 64-bit integer range"
        error = next(iter(_validator_of(param.get("schema", param)).iter_errors(value)), None)
        return f"{param['name']}: {short_message(error)}" if error else None


# A validator per parameter schema, made once: the schemas are the spec's own dicts, which live as
# long as the app (keyed by identity, the schema kept beside its validator so an id is never
# mistaken for another dict's).
_validators = {}


def _validator_of(schema):
    entry = _validators.get(id(schema))
    if entry is None or entry[0] is not schema:
        entry = (schema, Draft4Validator(schema, format_checker=Draft4Validator.FORMAT_CHECKER))
        _validators[id(schema)] = entry
    return entry[1]
