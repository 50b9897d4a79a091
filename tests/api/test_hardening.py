"""What a real server refuses or keeps to itself, whoever asks: request bodies over the limit,
huge values quoted back, unbounded pages, tokens in the access log, a spoofed client address,
and a data dir other local users can read (security review findings 6, 8, 9, 12, 15).

One server (SQLite) for the module, started on a data dir left as an install made under umask
022 would have left it: folder 0755, a world-readable berth.db.
"""
import json
import os
import select
import socket
import subprocess
import tempfile
import time

import psutil
import pytest

from support.harness import Api, BerthServer, activate

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def server():
    data_dir = tempfile.mkdtemp(prefix="berth-test-")
    os.chmod(data_dir, 0o755)
    database = os.path.join(data_dir, "berth.db")
    open(database, "w").close()  # an empty file is an empty SQLite database
    os.chmod(database, 0o644)
    srv = BerthServer(data_dir=data_dir).start()
    yield srv
    srv.cleanup()


@pytest.fixture(scope="module")
def owner(server):
    return activate(server)


def worker(server):
    """The gunicorn worker process serving the API (the server runs one)."""
    [proc] = psutil.Process(server.proc.pid).children()
    return proc


def raw_request(port, head, body=b"", timeout=20):
    """Send `head` + `body` over a raw socket, stopping as soon as the server answers, and
    return (status, headers, response body, seconds until the answer)."""
    payload = head + body
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setblocking(False)
    start = time.monotonic()
    deadline = start + timeout
    sent = 0
    try:
        while time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock] if sent < len(payload) else [], [], 0.5)
            if readable:
                break
            if writable:
                try:
                    sent += sock.send(payload[sent:sent + 65536])
                except (BrokenPipeError, ConnectionResetError):
                    break
        answered = time.monotonic() - start
        sock.setblocking(True)
        sock.settimeout(max(1.0, deadline - time.monotonic()))
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    head_part, _, response_body = data.partition(b"\r\n\r\n")
    lines = head_part.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, response_body, answered


def _length(data):
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


def login_body(size):
    return b'{"username":"' + b"a" * size + b'","password":"x"}'


# ---- finding 8: request bodies ------------------------------------------------------------------

def test_20mb_login_body_is_refused_before_it_is_read(server):
    body = login_body(20 * MIB)
    rss_before = worker(server).memory_info().rss
    head = (f"POST /api/v1/cloudron/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    status, headers, answer, seconds = raw_request(server.port, head, body)
    assert status == 413, answer[:500]
    assert seconds < 2
    assert int(headers["content-length"]) < 500
    assert "larger than 4194304 bytes" in json.loads(answer)["message"]
    assert worker(server).memory_info().rss - rss_before < 8 * MIB


def test_20mb_chunked_login_body_is_counted_and_refused_while_read(server):
    piece = 64 * 1024
    body = login_body(20 * MIB)
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + piece]), body[i:i + piece])
                       for i in range(0, len(body), piece)) + b"0\r\n\r\n"
    rss_before = worker(server).memory_info().rss
    head = (b"POST /api/v1/cloudron/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    status, headers, answer, seconds = raw_request(server.port, head, chunked)
    assert status == 413, answer[:500]
    assert seconds < 5
    assert int(headers["content-length"]) < 500
    assert worker(server).memory_info().rss - rss_before < 8 * MIB


def test_chunked_json_body_is_read_like_any_other(server):
    body = b'{"username":"nobody-here","password":"wrong-one"}'
    head = (b"POST /api/v1/cloudron/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    status, _, answer, _ = raw_request(server.port, head, b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    assert status == 401, answer  # the credentials were read (no "username: is required")


def test_chunked_multipart_upload_reaches_the_handler_with_its_file(owner, server):
    boundary = b"berthboundary"
    form = (b"--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n"
            b"Content-Type: application/octet-stream\r\n\r\nhello\r\n--%s--\r\n" % (boundary, boundary))
    head = (b"POST /api/v1/apps/no-such-app/upload?file=/tmp/a.txt HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Authorization: Bearer %s\r\nContent-Type: multipart/form-data; boundary=%s\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" % (owner.token.encode(), boundary))
    status, _, answer, _ = raw_request(server.port, head, b"%x\r\n%s\r\n0\r\n\r\n" % (len(form), form))
    assert status == 404, answer  # the file part was read (not "file: must be provided as multipart")


def test_huge_value_is_quoted_back_only_as_a_short_prefix(server):
    r = Api(server.api).post("/cloudron/login", data=login_body(1 * MIB),
                             headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    message = r.json()["message"]
    assert message.startswith("username: 'aaaa") and "…" in message
    assert len(r.content) < 300


def test_upload_route_declares_a_larger_limit(owner):
    files = {"file": ("big.bin", b"\0" * (5 * MIB))}
    assert owner.post("/cloudron/login", files=files).status_code == 413
    r = owner.post("/apps/no-such-app/upload", params={"file": "/tmp/big.bin"}, files=files)
    assert r.status_code in (404, 501), r.text  # past the limit: no such app, or not built yet


# ---- finding 15: pagination ---------------------------------------------------------------------

def test_per_page_of_a_billion_is_refused_naming_per_page(owner):
    r = owner.get("/cloudron/eventlog", params={"per_page": 1000000000})
    assert r.status_code == 400
    assert r.json()["message"].startswith("per_page: ")
    assert owner.get("/users", params={"per_page": 5000}).status_code == 200  # what the dashboard asks


# ---- finding 9: tokens in the access log --------------------------------------------------------

def test_access_token_in_the_query_never_reaches_the_access_log(server, owner):
    token = owner.token
    base = Api(server.api)
    assert base.get(f"/profile?access_token={token}").status_code == 200
    assert base.get(f"/users?page=1&access_token={token}&per_page=2").status_code == 200
    assert base.get(f"/profile?api_key={token}").status_code == 401
    deadline = time.time() + 5
    while "access_token=REDACTED&per_page=2" not in (log := open(server.log_path).read()):
        assert time.time() < deadline, log[-2000:]
        time.sleep(0.1)
    assert token not in log
    assert "/profile?access_token=REDACTED" in log and "api_key=REDACTED" in log


# ---- finding 12: client address -----------------------------------------------------------------

def failed_login_ip(server_api, owner_api, name):
    r = Api(server_api).post("/cloudron/login", json={"username": name, "password": "wrong-pass-1"},
                             headers={"X-Forwarded-For": "203.0.113.77"})
    assert r.status_code == 401
    events = owner_api.get("/cloudron/eventlog", params={"action": "user.login_failed"}).json()["eventlogs"]
    [event] = [e for e in events if e["data"].get("username") == name]
    return event["source"]["ip"]


def test_spoofed_x_forwarded_for_from_localhost_is_not_believed(server, owner):
    assert failed_login_ip(server.api, owner, "spoofer") == "127.0.0.1"


def test_x_forwarded_for_is_believed_from_a_configured_proxy():
    proxied = BerthServer(env={"BERTH_TRUSTED_PROXIES": "127.0.0.1"}).start()
    try:
        api = Api(proxied.api)
        r = api.post("/cloudron/activate", json={"username": "owner", "password": "Owner-pass-1",
                                                 "email": "owner@example.com"})
        assert r.status_code == 201, r.text
        assert failed_login_ip(proxied.api, api.with_token(r.json()["token"]), "proxied") == "203.0.113.77"
    finally:
        proxied.cleanup()


# ---- finding 6: the data dir --------------------------------------------------------------------

def test_data_dir_and_database_files_are_private_to_berth(server, owner):
    assert os.stat(server.data_dir).st_mode & 0o777 == 0o700
    files = [f for f in os.listdir(server.data_dir) if f.startswith("berth.db")]
    assert {"berth.db", "berth.db-wal"} <= set(files)
    for name in files:
        assert os.stat(os.path.join(server.data_dir, name)).st_mode & 0o777 == 0o600, name
    if os.geteuid() != 0:
        pytest.skip("reading as another user needs root (runuser)")
    read = subprocess.run(["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c",
                           f"open({os.path.join(server.data_dir, 'berth.db')!r}, 'rb').read(16)"],
                          capture_output=True, text=True)
    assert read.returncode != 0 and "PermissionError" in read.stderr, read.stderr
