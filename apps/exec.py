"""Exec into an app's container (GET /apps/{id}/exec and /execws): what may run, and the record.

The relay itself (bytes between the client and the engine's socket) lives with the protocol in
web/websocket.py; this module decides whether a session may start, starts it through
containers.exec_session and records it. The event log gets the command, never the stream: a
shell session carries whatever the admin types, passwords included.
"""
import json

import eventlog
from apps import get_app
from containers import exec_session
from containers.engine import ContainerError
from core.errors import BadRequest, Conflict

# Cloudron's default: its app images all ship bash. A container without it fails the exec with
# exit code 126/127, seen by the client like any other exit.
DEFAULT_CMD = ["/bin/bash"]


def parse_options(cmd: str | None, tty: str | bool | None, rows: str | int | None,
                  columns: str | int | None) -> dict:
    """The session options from the query (strings as the client sent them)."""
    command = DEFAULT_CMD
    if cmd:
        try:
            command = json.loads(cmd)
        except ValueError:
            raise BadRequest("must be a JSON array of strings", "cmd") from None
        if (not isinstance(command, list) or not command
                or not all(isinstance(c, str) and "\0" not in c for c in command)):
            raise BadRequest("must be a JSON array of at least one string", "cmd")
    return {"cmd": command, "tty": tty in (True, "true", "1"),
            "rows": _size(rows, "rows"), "columns": _size(columns, "columns")}


def _size(value, name):
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise BadRequest("must be a number", name) from None
    if not 1 <= number <= 10000:
        raise BadRequest("must be between 1 and 10000", name)
    return number


def check_app(app_id: str) -> None:
    """NotFound for no such app, Conflict (409) unless it is installed and running."""
    app = get_app(app_id)
    if app.installation_state != "installed" or app.run_state != "running":
        raise Conflict("App is not installed and running")


def start(actor: eventlog.Actor, app_id: str, options: dict) -> exec_session.ExecSession:
    """Starts the session (blocking: call from a worker thread) and records it."""
    check_app(app_id)
    try:
        session = exec_session.start(app_id, options["cmd"], options["tty"], options["rows"], options["columns"])
    except ContainerError as exc:
        raise Conflict(exc.message) from None
    eventlog.record("app.exec", actor, appId=app_id, command=options["cmd"], tty=options["tty"])
    return session
