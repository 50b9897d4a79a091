"""`berth exec`, `push` and `pull`: a command or shell inside an app (through the execws
WebSocket), files in and out of the app's /app/data (upload and download routes)."""
import contextlib
import io
import json
import os
import select
import shutil
import signal
import sys
import tarfile
import threading

import click
import websocket

from cli.app_commands import app_option, resolve
from cli.client import API, ApiError

CHUNK = 64 * 1024


@click.command("exec", context_settings={"ignore_unknown_options": True})
@app_option
@click.option("--tty/--no-tty", default=None, help="default: a terminal when stdin is one")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def exec_command(session, app_ref, tty, command):
    """Run COMMAND in the app's container (default: a shell). Exits with the command's exit code.

    berth exec --app wiki -- ls -l /app/data
    """
    client = session.client
    app = resolve(client, app_ref)
    tty = sys.stdin.isatty() if tty is None else tty
    columns, rows = shutil.get_terminal_size()
    params = {"cmd": json.dumps(list(command) or ["/bin/sh"]), "tty": str(tty).lower(),
              "rows": rows, "columns": columns, "access_token": client.token}
    url = client.server.replace("http", "ws", 1) + f"{API}/apps/{app['id']}/execws"
    query = "&".join(f"{k}={_quote(v)}" for k, v in params.items())
    try:
        ws = websocket.create_connection(f"{url}?{query}", sslopt=None if not session.insecure else
                                         {"cert_reqs": 0}, timeout=30)
    except websocket.WebSocketBadStatusException as e:
        raise ApiError(f"The server refused the session (HTTP {e.status_code}): "
                       f"{_message(e.resp_body)}") from None
    except OSError as e:
        raise ApiError(f"Cannot reach {client.server}: {e}") from None
    ws.settimeout(None)
    sys.exit(_relay(ws, tty))


def _quote(value):
    from urllib.parse import quote
    return quote(str(value), safe="")


def _message(body):
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        return json.loads(body)["message"]
    return (body or b"").decode(errors="replace")[:200] if isinstance(body, bytes) else str(body)


def _relay(ws, tty) -> int:
    """Copy stdin to the session and the session to stdout until it closes; the exit code."""
    stop = threading.Event()
    sender = threading.Thread(target=_send_stdin, args=(ws, tty, stop), daemon=True)
    with _raw_terminal(tty):
        if tty:
            signal.signal(signal.SIGWINCH, lambda *_: _resize(ws))
        sender.start()
        code = 1011
        try:
            while True:
                opcode, data = ws.recv_data(control_frame=True)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
                    break
                if opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
                    sys.stdout.buffer.write(data)
                    sys.stdout.buffer.flush()
        except websocket.WebSocketConnectionClosedException:
            pass
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                ws.close()
    return code - 4000 if 4000 <= code < 4256 else 1


def _send_stdin(ws, tty, stop):
    fd = sys.stdin.fileno()
    while not stop.is_set():
        if tty and not select.select([fd], [], [], 0.2)[0]:
            continue
        data = os.read(fd, CHUNK)
        try:
            if not data:
                ws.send(json.dumps({"type": "eof"}))
                return
            ws.send(data, opcode=websocket.ABNF.OPCODE_BINARY)
        except (websocket.WebSocketException, OSError):
            return


def _resize(ws):
    columns, rows = shutil.get_terminal_size()
    with contextlib.suppress(websocket.WebSocketException, OSError):
        ws.send(json.dumps({"type": "resize", "rows": rows, "columns": columns}))


@contextlib.contextmanager
def _raw_terminal(tty):
    if not tty or not sys.stdin.isatty():
        yield
        return
    import termios
    import tty as tty_mode
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty_mode.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@click.command()
@app_option
@click.argument("local", type=click.Path(exists=True))
@click.argument("remote", default="/app/data/")
@click.pass_obj
def push(session, app_ref, local, remote):
    """Copy a local file or folder into the app (under /app/data)."""
    client = session.client
    app = resolve(client, app_ref)
    if os.path.isdir(local):
        body, params = _tar_of(local), {"file": remote, "extract": "true"}
        name = "folder.tar.gz"
    else:
        target = remote.rstrip("/") + "/" + os.path.basename(local) if remote.endswith("/") else remote
        body, params, name = open(local, "rb"), {"file": target}, os.path.basename(local)
    with body:
        client.call("POST", f"/apps/{app['id']}/upload", params=params, files={"file": (name, body)})
    click.echo(f"{local} -> {app.get('fqdn') or app['id']}:{params['file']}")


def _tar_of(folder):
    buffer = io.BytesIO()  # folders pushed by hand are small; large data goes through backups
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname=".")
    buffer.seek(0)
    return buffer


@click.command()
@app_option
@click.argument("remote")
@click.argument("local", type=click.Path(), default=".")
@click.pass_obj
def pull(session, app_ref, remote, local):
    """Copy a file or folder (as .tar.gz) out of the app's /app/data."""
    client = session.client
    app = resolve(client, app_ref)
    with client.stream("GET", f"/apps/{app['id']}/download", params={"file": remote}) as response:
        name = _attachment_name(response.headers.get("content-disposition")) or os.path.basename(remote.rstrip("/"))
        target = os.path.join(local, name) if os.path.isdir(local) else local
        total = 0
        with open(target, "wb") as f:
            for chunk in response.iter_bytes():
                f.write(chunk)
                total += len(chunk)
    click.echo(f"{app.get('fqdn') or app['id']}:{remote} -> {target} ({total} bytes)")


def _attachment_name(header):
    if not header or "filename=" not in header:
        return None
    name = header.split("filename=", 1)[1].strip().strip('"')
    return os.path.basename(name) or None


COMMANDS = (exec_command, push, pull)
