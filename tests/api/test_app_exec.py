"""Exec into an app for real: one Berth server and one busybox app (tests/support/images.py) on
the real engine; shell sessions over WebSocket (websocket-client) and over the raw
`Upgrade: tcp` connection Cloudron's CLI uses, tty and not, with the exit code at the end."""
import json
import socket
import struct
import time
import urllib.parse

import pytest
import websocket

from support.apps_env import _berth, unique

PASSWORD = "User-pass-1"
SH = json.dumps(["/bin/sh"])


@pytest.fixture(scope="module")
def env(parts, tmp_path_factory):
    env = _berth(parts, tmp_path_factory)
    try:
        env.start()
        env.app_id = env.install(unique("exec"))["id"]
        name = unique("member")
        r = env.api.post("/users", json={"username": name, "email": f"{name}@example.com",
                                         "password": PASSWORD, "role": "user"})
        assert r.status_code == 201, r.text
        r = env.api.post("/cloudron/login", json={"username": name, "password": PASSWORD})
        assert r.status_code == 200, r.text
        env.user_token = r.json()["token"]
        yield env
    finally:
        env.close()


def _ws_url(env, **query):
    base = env.server.api.replace("http://", "ws://", 1)
    return f"{base}/apps/{env.app_id}/execws?{urllib.parse.urlencode(query)}"


def _session(ws, sends=(), timeout=20):
    """Sends each message, then reads text until the server closes: (output, close code)."""
    for message in sends:
        ws.send(message)
    out, deadline = [], time.time() + timeout
    while time.time() < deadline:
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return "".join(out), struct.unpack(">H", data[:2])[0] if len(data) >= 2 else None
        if opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
            out.append(data.decode())
    raise AssertionError(f"no close within {timeout}s: {''.join(out)!r}")


def test_tty_shell_runs_commands_sees_resize_and_exit_code(env):
    ws = websocket.create_connection(_ws_url(env, cmd=SH, tty="true", rows=24, columns=80), timeout=20,
                                     header=[f"Authorization: Bearer {env.api.token}"])
    try:
        output, code = _session(ws, [
            "echo hello-$((40+2))\n", "ls /app/data\n",
            json.dumps({"type": "resize", "rows": 33, "columns": 101}), "stty size\n", "exit 3\n"])
    finally:
        ws.close()
    assert "hello-42" in output
    assert "starts" in output          # the image writes /app/data/starts on every start
    assert "33 101" in output          # the resize reached the terminal
    assert code == 4003


def test_non_tty_command_gets_stdin_and_separates_nothing_but_ends_with_exit_code(env):
    cmd = json.dumps(["/bin/sh", "-c", "echo out; echo err >&2; cat; exit 7"])
    ws = websocket.create_connection(_ws_url(env, cmd=cmd, access_token=env.api.token), timeout=20)
    try:
        output, code = _session(ws, ["piped-in\n", json.dumps({"type": "eof"})])
    finally:
        ws.close()
    assert "out\n" in output and "err\n" in output and "piped-in\n" in output
    assert code == 4007


def test_closing_the_websocket_ends_the_command(env):
    marker = f"sleep {int(time.time()) % 1000 + 1000}"
    ws = websocket.create_connection(_ws_url(env, cmd=json.dumps(["/bin/sh", "-c", marker]), tty="true",
                                             access_token=env.api.token), timeout=20)
    container = env.docker.containers.get(f"berth-{env.app_id}")
    deadline = time.time() + 10
    while marker not in json.dumps(container.top()) and time.time() < deadline:
        time.sleep(0.1)
    assert marker in json.dumps(container.top())
    ws.close()
    deadline = time.time() + 10
    while marker in json.dumps(container.top()):
        assert time.time() < deadline, "the command outlived its client"
        time.sleep(0.2)


@pytest.mark.parametrize("token, status", [("user", 403), (None, 401)])
def test_websocket_refuses_non_admins(env, token, status):
    query = {"cmd": SH}
    if token:
        query["access_token"] = env.user_token
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection(_ws_url(env, **query), timeout=10)
    assert e.value.status_code == status


def test_websocket_for_unknown_app_is_404(env):
    url = _ws_url(env, cmd=SH, access_token=env.api.token).replace(env.app_id, "no-such-app")
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection(url, timeout=10)
    assert e.value.status_code == 404


def _raw(env, token, **query):
    """Opens GET /exec with Upgrade: tcp; returns (socket, status line, bytes after the head)."""
    parsed = urllib.parse.urlparse(env.server.api)
    sock = socket.create_connection((parsed.hostname, parsed.port), timeout=20)
    path = f"{parsed.path}/apps/{env.app_id}/exec?{urllib.parse.urlencode(query)}"
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {parsed.netloc}\r\nAuthorization: Bearer {token}\r\n"
                  "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, head
        head += chunk
    head, _, rest = head.partition(b"\r\n\r\n")
    return sock, head.split(b"\r\n")[0].decode(), rest


def _read_all(sock, data):
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_raw_upgrade_runs_a_command_with_framed_stdin_and_exit_code(env):
    cmd = json.dumps(["/bin/sh", "-c", "cat; echo oops >&2; ls /app/data; exit 3"])
    sock, status, rest = _raw(env, env.api.token, cmd=cmd)
    try:
        assert " 101 " in status
        payload = b"raw-stdin\n"
        sock.sendall(struct.pack(">I", len(payload)) + payload + struct.pack(">I", 0))
        data = _read_all(sock, rest)
    finally:
        sock.close()
    streams = {1: b"", 2: b"", 3: b""}
    while data:
        kind, length = data[0], struct.unpack(">I", data[4:8])[0]
        streams[kind] += data[8:8 + length]
        data = data[8 + length:]
    assert b"raw-stdin\n" in streams[1] and b"starts" in streams[1]
    assert streams[2] == b"oops\n"
    assert json.loads(streams[3]) == {"exitCode": 3}


def test_raw_upgrade_with_tty_is_a_raw_stream(env):
    sock, status, rest = _raw(env, env.api.token, cmd=json.dumps(["/bin/sh", "-c", "echo tty-$((6*7))"]),
                              tty="true")
    try:
        assert " 101 " in status
        data = _read_all(sock, rest)
    finally:
        sock.close()
    assert b"tty-42" in data


def test_raw_exec_refuses_non_admins_and_requests_without_upgrade(env):
    sock, status, _ = _raw(env, env.user_token, cmd=SH)
    sock.close()
    assert " 403 " in status
    r = env.api.get(f"/apps/{env.app_id}/exec", params={"cmd": SH})
    assert r.status_code == 400 and "Upgrade" in r.json()["message"]


def test_each_exec_is_in_the_event_log_without_the_stream(env):
    r = env.api.get("/cloudron/eventlog", params={"action": "app.exec", "per_page": 100})
    assert r.status_code == 200, r.text
    events = r.json()["eventlogs"]
    commands = [e["data"]["command"] for e in events]
    assert ["/bin/sh"] in commands
    assert all(e["data"]["appId"] == env.app_id for e in events)
    assert "hello-42" not in json.dumps(events) and "piped-in" not in json.dumps(events)


def test_sessions_leave_no_error_and_do_not_hold_up_shutdown(env):
    """Last in this module: hijacked connections are given back to the server (its graceful
    shutdown waits for every connection it knows), and nothing failed on the way."""
    with open(env.server.log_path, errors="replace") as f:
        log = f.read()
    assert "Traceback" not in log and "ASGI callable returned without" not in log, log[-3000:]
    started = time.monotonic()
    env.server.stop()
    assert env.server.proc.returncode is not None and time.monotonic() - started < 10
