"""Requests that no operation of the spec can serve are answered here, before any handler runs.

Why: Connexion's router passes a request it could not match on to Flask anyway, and Flask's own
routing is looser (it merges `//`, and its path converters accept characters Starlette's do not):
`/apps//upload` or a path with a percent-encoded newline reached a handler without Connexion's
operation context and crashed with 500. Here, right after routing, a request that matched no
operation answers 404; one that did has its path and query parameters checked for what no
handler or database can take: bytes that are not UTF-8 (the server would silently turn them into
U+FFFD) and NUL characters (PostgreSQL refuses them in text). Both answer 400 naming the parameter.
declare_refusals() writes these answers into the published spec; form_fields_read() keeps Flask's
reading of an upload in step with validation's.
"""
import copy
from urllib.parse import unquote_to_bytes

import flask
from connexion import context

from core.errors import BadRequest, NotFound

# Credentials, not parameters: web.security answers 401 for any token it does not know.
CREDENTIAL_PARAMS = {"access_token"}


class RequestGuardMiddleware:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            routing = (scope.get("extensions") or {}).get("connexion_routing") or {}
            if not routing.get("operation_id"):
                raise NotFound(f"No such route: {scope['method']} {_printable(scope.get('path', ''))}")
            _check_path(scope)
            _check_query(scope.get("query_string") or b"")
        await self.app(scope, receive, send)


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)[:200]


def _check_path(scope) -> None:
    params = scope.get("path_params") or {}
    raw = scope.get("raw_path") or b""
    try:
        unquote_to_bytes(raw.decode("ascii")).decode("utf-8")
        valid = True
    except UnicodeDecodeError:
        valid = False
    for name, value in params.items():
        if not isinstance(value, str):
            continue
        if not valid and "\ufffd" in value:
            raise BadRequest("is not valid UTF-8", name)
        if "\x00" in value:
            raise BadRequest("must not contain a NUL character", name)
    if not valid:
        raise BadRequest("is not valid UTF-8", "path")


def _check_query(query: bytes) -> None:
    for pair in query.split(b"&"):
        name, _, value = pair.partition(b"=")
        try:
            name_text = unquote_to_bytes(name.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("a query parameter name is not valid UTF-8") from None
        if name_text in CREDENTIAL_PARAMS:
            continue
        try:
            value_text = unquote_to_bytes(value.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("is not valid UTF-8", name_text[:64]) from None
        if "\x00" in name_text or "\x00" in value_text:
            raise BadRequest("must not contain a NUL character", _printable(name_text)[:64])


def _error(description):
    return {"description": description, "schema": {"$ref": "#/definitions/Error"}}


PARAMETER_ERROR = _error("A parameter or the body is not valid (its schema, UTF-8, NUL, 64-bit range)")
BODY_ERRORS = {413: _error("The request body is larger than this operation accepts"),
               415: _error("The Content-Type is not one this operation consumes")}


def declare_refusals(spec) -> None:
    """Declare in `spec` (the one the server publishes) the refusals any operation may answer
    besides its own: 400 on every operation that takes parameters (this guard and the request
    validation refuse a bad one on any of them), 413 and 415 on every operation with a body."""
    for item in spec["paths"].values():
        shared = item.get("parameters") or []
        for op in item.values():
            if not (isinstance(op, dict) and "operationId" in op):
                continue
            params = shared + (op.get("parameters") or [])
            responses = op.setdefault("responses", {})
            declared = {str(status) for status in responses}
            wanted = {400: PARAMETER_ERROR} if params else {}
            if any(p.get("in") in ("body", "formData") for p in params):
                wanted.update(BODY_ERRORS)
            for status, response in wanted.items():
                if str(status) not in declared:
                    responses[status] = copy.deepcopy(response)  # no dict shared between operations


def form_fields_read() -> None:
    """Flask before_request: the required form fields validation saw must reach the handler.
    Validation (Starlette's multipart parser) and Flask (Werkzeug's) read a body separately, and
    Werkzeug silently drops a part it cannot decode (a file name that is not UTF-8): the handler
    would then be called without the field and crash. Answer 400 naming the field instead."""
    if flask.request.mimetype != "multipart/form-data":
        return
    schema = context.operation.body_schema(flask.request.mimetype) or {}
    for name in schema.get("required") or ():
        if name not in flask.request.files and name not in flask.request.form:
            raise BadRequest("is required (its part could not be read: names must be UTF-8)", name)
