"""/network/blocklist over HTTP: validation, the caller never locked out, and a blocked address
refused (403) by Berth's nginx on every server block while another address is served. The client
source addresses are two loopback addresses (127.0.0.1 and 127.0.0.2) against nginx on 127.0.0.1."""
import socket
import ssl
import time

import pytest

from models import Setting
from support import images
from support.apps_env import _berth, unique
from support.task_queue import Db

BLOCKED = "127.0.0.2"
ALLOWED = "127.0.0.1"


@pytest.fixture(scope="module")
def berth(parts, tmp_path_factory):
    env = _berth(parts, tmp_path_factory)
    try:
        env.start()
        env.fqdn = env.install(unique("guarded"))["fqdn"]
        env.wait_page(env.fqdn, "served", lambda status, body: status == 200)
        yield env
    finally:
        env.close()


def fetch(berth, source, https=True, host=None):
    """(status, body) of GET https://<host or the app>/ through Berth's nginx, connecting from `source`."""
    host = host or berth.fqdn
    port = berth.https_port if https else berth.http_port
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0)) as raw:
        sock = raw
        if https:
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            sock = context.wrap_socket(raw, server_hostname=host)
        sock.sendall(f"GET / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.decode(errors="replace").partition("\r\n\r\n")
    return int(head.split()[1]), body


def test_the_list_starts_empty_and_a_bad_line_is_a_400_naming_it(berth):
    api = berth.api
    assert api.get("/network/blocklist").json() == {"blocklist": ""}
    r = api.post("/network/blocklist", json={"blocklist": "# ok\n192.0.2.0/24\nnot-an-address\n"})
    assert r.status_code == 400 and "line 3" in r.json()["message"] and "not-an-address" in r.json()["message"], r.text
    r = api.post("/network/blocklist", json={"blocklist": "10.0.0.0/8; allow all"})
    assert r.status_code == 400 and "line 1" in r.json()["message"], r.text
    assert api.post("/network/blocklist", json={}).status_code == 400
    assert api.get("/network/blocklist").json() == {"blocklist": ""}


def test_a_blocked_address_gets_403_from_the_proxy_while_another_is_served(berth):
    assert fetch(berth, BLOCKED)[0] == fetch(berth, ALLOWED)[0] == 200
    text = f"# noisy neighbour\n{BLOCKED}  # loopback alias\n2001:db8::/32\n"
    r = berth.api.post("/network/blocklist", json={"blocklist": text})
    assert r.status_code == 200, r.text
    assert berth.api.get("/network/blocklist").json() == {"blocklist": text}     # as sent, comments kept

    status, body = fetch(berth, ALLOWED)
    assert status == 200 and images.INDEX_MARKER in body
    assert fetch(berth, BLOCKED)[0] == 403
    # Also what nginx answers by itself (`return` runs before `deny` would): the plain-HTTP
    # redirect and the catch-all of unknown names.
    assert fetch(berth, ALLOWED, https=False)[0] == 301
    assert fetch(berth, BLOCKED, https=False)[0] == 403
    assert fetch(berth, ALLOWED, host="unknown.example.test")[0] == 404
    assert fetch(berth, BLOCKED, host="unknown.example.test")[0] == 403

    # Lifted again: served.
    assert berth.api.post("/network/blocklist", json={"blocklist": "# nobody\n"}).status_code == 200
    assert fetch(berth, BLOCKED)[0] == 200


def test_the_stored_list_is_given_to_nginx_again_at_start_up(berth):
    """A database restored with another list than nginx's copy: Berth's start-up puts it in force."""
    berth.server.stop()
    with Db(berth.server):
        Setting.put("network_blocklist", f"{BLOCKED}\n")
    try:
        berth.start()
        deadline = time.time() + 30
        while fetch(berth, BLOCKED)[0] != 403:
            assert time.time() < deadline, "the stored block list was not applied at start-up"
            time.sleep(0.3)
        assert fetch(berth, ALLOWED)[0] == 200
    finally:
        assert berth.api.post("/network/blocklist", json={"blocklist": "# nobody\n"}).status_code == 200


@pytest.mark.parametrize("text, headers", [
    ("127.0.0.0/8", {}),                                    # the API client connects from 127.0.0.1
    ("0.0.0.0/0", {}),
    ("198.51.100.0/24", {"X-Real-IP": "198.51.100.9"}),     # the client nginx saw, in front of the API
    ("203.0.113.7", {"X-Forwarded-For": "203.0.113.7, 127.0.0.1"}),
])
def test_a_list_covering_the_callers_own_address_is_a_409(berth, text, headers):
    r = berth.api.post("/network/blocklist", json={"blocklist": f"192.0.2.1\n{text}\n"}, headers=headers)
    assert r.status_code == 409 and "your own address" in r.json()["message"], r.text
    assert berth.api.get("/network/blocklist").json()["blocklist"] == "# nobody\n"   # nothing stored
    assert fetch(berth, BLOCKED)[0] == 200                                           # nothing applied
