"""The baseline for bench/api.py: a bare Flask app answering GET /api/v1/users exactly as Berth does.

It does the same work per request as Berth's path, with nothing else around it: the bearer
token's sha256 is looked up in `token` joined to `user` (expiry, active flag and the role
list of the operation are checked), the page of users is read in the same order with the
same SQL, their group ids come from one query on `group_member`, and the JSON has the same
fields in the same order. Only the framework layers differ: no Connexion, no spec
validation, no Peewee, no marshmallow; the stdlib sqlite3 module, dicts and json.dumps.

Served two ways by bench/api.py, both under gunicorn with one worker:
  `gunicorn bare_app:app` (the default sync worker: Flask's own, WSGI) and
  `gunicorn -k uvicorn_worker.UvicornWorker bare_app:asgi_app` (the same stack as Berth:
  Connexion runs Flask inside uvicorn through a2wsgi's WSGIMiddleware).
The database is the SQLite file named by BARE_DATABASE (Berth's own database).
"""
import hashlib
import json
import os
import sqlite3
import threading
import time

import flask
from a2wsgi import WSGIMiddleware

DATABASE = os.environ.get("BARE_DATABASE", "berth.db")
# The same pragmas as Berth's models/db.py, so both read the file the same way.
PRAGMAS = ("journal_mode=wal", "busy_timeout=10000", "foreign_keys=1", "synchronous=normal",
           "cache_size=-16000")
LIST_USERS_ROLES = {"owner", "admin", "mailmanager", "usermanager"}  # x-roles of listUsers

TOKEN_SQL = ('SELECT t."expires", u."role", u."active" FROM "token" AS t '
             'INNER JOIN "user" AS u ON (t."user_id" = u."id") WHERE (t."token_hash" = ?) LIMIT 1')
USERS_SQL = ('SELECT "id", "username", "email", "fallback_email", "display_name", "role", "active", '
             '"source", "creation_time", "last_login_time" FROM "user" '
             'ORDER BY "sort_key", "id" '
             'LIMIT ? OFFSET ?')
GROUPS_SQL = 'SELECT "user_id", "group_id" FROM "group_member" WHERE ("user_id" IN ({}))'

_local = threading.local()  # one connection per thread, as Peewee keeps them
app = flask.Flask(__name__)


def db():
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = sqlite3.connect(DATABASE, timeout=10, check_same_thread=False)
        for pragma in PRAGMAS:
            conn.execute("PRAGMA " + pragma)
        _local.conn = conn
    return conn


def iso(text):
    """Peewee's stored datetime text -> the API's ISO string (`...T..:..:...mmmZ`)."""
    if text is None:
        return None
    date, _, rest = text.partition(" ")
    clock, _, fraction = rest.partition(".")
    return f"{date}T{clock}.{(fraction + '000')[:3]}Z"


def error(status, message):
    reasons = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden"}
    return flask.Response(json.dumps({"status": reasons[status], "message": message}), status,
                          mimetype="application/json")


def _int_arg(name, default):
    raw = flask.request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if value >= 1 else None


@app.get("/api/v1/users")
def list_users():
    scheme, _, token = flask.request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return error(401, "Authorization header must be 'Bearer <token>'")
    conn = db()
    row = conn.execute(TOKEN_SQL, (hashlib.sha256(token.strip().encode()).hexdigest(),)).fetchone()
    if row is None or row[0] <= time.time() * 1000 or not row[2]:
        return error(401, "Invalid token")
    if row[1] not in LIST_USERS_ROLES:
        return error(403, f"Role '{row[1]}' may not call this operation")
    page, per_page = _int_arg("page", 1), _int_arg("per_page", 25)
    if page is None or per_page is None:
        return error(400, "page and per_page must be integers of at least 1")
    users, by_id = [], {}
    for (uid, username, email, fallback, display, role, active, source, created,
         last_login) in conn.execute(USERS_SQL, (per_page, (page - 1) * per_page)):
        user = {"id": uid, "username": username, "email": email, "fallbackEmail": fallback,
                "displayName": display, "groupIds": [], "admin": role in ("owner", "admin"),
                "role": role, "active": bool(active), "source": source,
                "twoFactorAuthenticationEnabled": False, "creationTime": iso(created),
                "lastLoginTime": iso(last_login)}
        users.append(user)
        by_id[uid] = user
    if by_id:
        sql = GROUPS_SQL.format(", ".join("?" * len(by_id)))
        for uid, gid in conn.execute(sql, list(by_id)):
            by_id[uid]["groupIds"].append(gid)
    return flask.Response(json.dumps({"users": users}, separators=(",", ":")), 200,
                          mimetype="application/json")


# The same WSGI app behind the ASGI adapter Connexion uses, for the uvicorn worker.
asgi_app = WSGIMiddleware(app)
