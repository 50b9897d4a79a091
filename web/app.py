"""Builds the Berth application: configuration, database, the Connexion API from openapi.yaml,
and the one error format (`{"status", "message"}`) for every failure."""
import json
import logging

import connexion
import flask
from connexion.datastructures import MediaTypeDict
from connexion.exceptions import ProblemException
from connexion.jsonifier import Jsonifier
from connexion.lifecycle import ConnexionResponse
from connexion.middleware import MiddlewarePosition
from connexion.options import SwaggerUIOptions
from connexion.resolver import Resolver
from connexion.validators import VALIDATOR_MAP

import backups
import domains
import platform_settings
import system_monitor
from apps import health as app_health
from core import config, data_paths
from core.errors import ApiError, body, reason
from deployments import hygiene as image_hygiene
from metrics import exposition as metrics_exposition
from metrics import middleware as metrics_middleware
from models import migrations, open_database
from web import access_log, event_stream, request_guard, request_limits, security, unbuilt, views, websocket
from web.lifespan import lifespan
from web.request_validation import CheckedMultiPartValidator, LiberalJSONBodyValidator, NamedParameterValidator
from web.spec import ROOT, load_spec, operations
from web.startup import make_data_dir_private
from web.wsgi_bridge import WsgiBridge

log = logging.getLogger("berth")


def _json(status, message, headers=None):
    return ConnexionResponse(status_code=status, mimetype="application/json",
                             body=json.dumps(body(status, message)), headers=headers or {})


def _problem_handler(request, exc):
    return _json(exc.status, exc.detail or exc.title or reason(exc.status), dict(exc.headers or {}))


def _api_error_handler(request, exc):
    return _json(exc.status, exc.message, exc.headers)


def _http_handler(request, exc):
    status = getattr(exc, "status_code", 500)
    message = {404: f"No such route: {request.method} {request.url.path}",
               405: f"Method {request.method} is not allowed on {request.url.path}"}.get(
        status, getattr(exc, "detail", None) or reason(status))
    return _json(status, message, dict(getattr(exc, "headers", None) or {}))


def _crash_handler(request, exc):
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _json(500, "Internal error")


def _flask_api_error(exc):
    return flask.Response(json.dumps(body(exc.status, exc.message)), exc.status,
                          {**exc.headers, "Content-Type": "application/json"})


def _keep_form_bodies():
    """Flask before_request: keep the raw bytes of a form-encoded body. Connexion parses form
    bodies (Swagger 2) before the handler runs, which consumes the stream; a webhook signed over
    the raw body (GitHub's `application/x-www-form-urlencoded` deliveries) needs those bytes.
    Werkzeug parses the form from the cached bytes then."""
    if flask.request.mimetype == "application/x-www-form-urlencoded":
        flask.request.get_data(cache=True, parse_form_data=False)


def create_app(cfg=None):
    cfg = cfg or config.load()
    config.use(cfg)
    make_data_dir_private(cfg)  # umask 077, data dir 0700, database files 0600
    access_log.install()        # no token in access log lines
    system_monitor.install_log_files()  # box.log and crash.log under the data dir (/cloudron/logs)
    metrics_exposition.install(open_database(cfg.database_url))  # SQL statements timed
    migrations.migrate()
    app_health.register()  # recurring health check and reconciliation of apps
    platform_settings.register()  # update schedules
    backups.register()     # automatic backups (from the backup config) and the six-hourly cleanup
    domains.acme_orders.register()  # hourly certificate renewal check (ACME)
    system_monitor.register()  # the resource graphs collector (BERTH_GRAPHS_INTERVAL)
    image_hygiene.register()   # hourly removal of built images no deployment needs (BERTH_KEEP_BUILDS)

    spec = load_spec()
    unbuilt.register_routes(spec)
    # The published spec declares the answers every operation may give besides its own:
    # 400 for a bad parameter, 413/415 for a body, 501 while its handler is not built.
    request_guard.declare_refusals(spec)
    unbuilt.declare_501(spec, Resolver().resolve_function_from_operation_id)
    roles, scopes = {}, {}
    for op_id, method, _path, op in operations(spec):
        declared = op.get("x-roles") or []
        roles[op_id] = (None if declared == ["public"] else frozenset(declared), method)
        if op.get("x-token-scope"):
            scopes[op_id] = op["x-token-scope"]
    security.configure(roles, cfg.rate_limit, scopes, cfg.metrics_token,
                       data_paths.rate_limit_file(cfg.data_dir))

    CheckedMultiPartValidator.STREAMED = set(request_limits.operation_limits(operations(spec)))
    validators = dict(VALIDATOR_MAP, parameter=NamedParameterValidator)
    validators["body"] = MediaTypeDict({**VALIDATOR_MAP["body"], "*/*json": LiberalJSONBodyValidator,
                                        "multipart/form-data": CheckedMultiPartValidator})
    # The task runner and scheduler live as long as each serving worker (ASGI lifespan).
    # Compact JSON: Connexion's default pretty-printing costs time and a third more bytes.
    app = connexion.FlaskApp(__name__, specification_dir=ROOT, lifespan=lifespan,
                             jsonifier=Jsonifier(json, separators=(",", ":")))
    # Right after routing: a request no operation matched answers 404 here (Flask's looser
    # routing would hand it to a handler without Connexion's context); parameters that are not
    # UTF-8 or carry NUL answer 400 (web.request_guard).
    app.add_middleware(request_guard.RequestGuardMiddleware, position=MiddlewarePosition.BEFORE_SECURITY)
    # Body size limits apply right after routing (they depend on the operation), before the
    # token check and before validation reads and parses the body.
    app.add_middleware(request_limits.BodyLimitMiddleware, position=MiddlewarePosition.BEFORE_SECURITY,
                       default=cfg.max_body_bytes, limits=request_limits.operation_limits(operations(spec)))
    # Requests counted and timed per operation (GET /metrics); after routing, so 401s count too.
    app.add_middleware(metrics_middleware.RequestMetricsMiddleware, position=MiddlewarePosition.BEFORE_SECURITY)
    # Log streams are answered on the event loop after routing, auth and validation, not by Flask.
    app.add_middleware(event_stream.StreamMiddleware)
    # Exec sessions (WebSocket and Upgrade: tcp) are answered on the event loop, outside the HTTP
    # stack; web.websocket applies the same token and x-roles check (web.security.authorize).
    app.add_middleware(websocket.ExecMiddleware, position=MiddlewarePosition.BEFORE_EXCEPTION)
    app.add_api(
        spec, resolver=Resolver(), pythonic_params=True, validator_map=validators,
        swagger_ui_options=SwaggerUIOptions(swagger_ui=True, swagger_ui_path="/ui"),
    )
    views.precompile_on_first_request(app.app)  # Connexion's decorators built once, not per request
    # Flask handlers run in a thread pool (a2wsgi; Connexion's default is 10 threads). Handlers
    # are short and CPU-bound under the GIL, so more threads only add lock hand-offs: a small
    # pool serves more requests per second (bench/api.py). Long waits (log streams) are async.
    # A few short reads skip the pool and run on the event loop (web.wsgi_bridge).
    app._middleware_app.asgi_app = WsgiBridge(app.app.wsgi_app, workers=cfg.wsgi_threads)
    app.add_error_handler(ApiError, _api_error_handler)
    app.add_error_handler(ProblemException, _problem_handler)
    for status in (404, 405):
        app.add_error_handler(status, _http_handler)
    app.add_error_handler(Exception, _crash_handler)
    app.app.register_error_handler(ApiError, _flask_api_error)
    app.app.before_request(request_guard.form_fields_read)
    app.app.before_request(_keep_form_bodies)
    app.app.json.sort_keys = False
    app.app.json.compact = True
    app.config = cfg
    return app
