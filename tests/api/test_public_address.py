"""The public address (sysinfo_config, server_ip) and dynamic DNS, through a real server: the
`generic` provider asks a lookup service the test serves on 127.0.0.1 (BERTH_IP_LOOKUP_URL), app
records are written through rfc2136 into a real BIND, and when the served address changes the
dynamic DNS schedule moves them."""
import http.server
import threading
import time

import pytest

from support.apps_env import berth_with_zone
from support.bind import running_bind
from support.harness import free_port

ADDRESS_A, ADDRESS_B = "192.0.2.10", "192.0.2.20"
ELSEWHERE = "198.51.100.9"


class LookupService:
    """A what-is-my-IP service answering `address` as plain text."""

    def __init__(self, address):
        self.address = address
        self.port = free_port()
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = service.address.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def bind():
    with running_bind("dyn.example.test") as server:
        yield server


@pytest.fixture(scope="module")
def lookup():
    service = LookupService(ADDRESS_A)
    yield service
    service.stop()


@pytest.fixture(scope="module")
def berth(parts, bind, lookup, tmp_path_factory):
    # Dynamic DNS checks every second here (every five minutes by default).
    with berth_with_zone(parts, bind, tmp_path_factory, {"BERTH_IP_LOOKUP_URL": lookup.url,
                                                         "BERTH_DYNAMIC_DNS_PATTERN": "* * * * * *"}) as env:
        yield env


def sysinfo(berth, **body):
    return berth.api.post("/settings/sysinfo_config", json=body)


def test_sysinfo_config_providers_and_server_ip(berth, lookup):
    api = berth.api
    assert api.get("/settings/sysinfo_config").json() == {"provider": "generic"}
    assert api.get("/cloudron/server_ip").json() == {"ip": ADDRESS_A}

    assert sysinfo(berth, provider="fixed", ip="203.0.113.5").status_code == 200
    assert api.get("/settings/sysinfo_config").json() == {"provider": "fixed", "ip": "203.0.113.5"}
    assert api.get("/cloudron/server_ip").json() == {"ip": "203.0.113.5"}
    assert sysinfo(berth, provider="fixed", ipv4="203.0.113.6", ipv6="2001:db8::6").status_code == 200
    assert api.get("/settings/sysinfo_config").json() == {"provider": "fixed", "ip": "203.0.113.6",
                                                          "ipv6": "2001:db8::6"}

    assert sysinfo(berth, provider="network-interface", ifname="lo").status_code == 200
    assert api.get("/cloudron/server_ip").json() == {"ip": "127.0.0.1"}

    # Refusals name the field, and leave the stored config as it was.
    for body, field in (({"provider": "dhcp"}, "provider"),
                        ({"provider": "fixed", "ip": "300.1.2.3"}, "ip"),
                        ({"provider": "fixed", "ipv4": "2001:db8::1"}, "ipv4"),
                        ({"provider": "fixed", "ipv6": "192.0.2.1"}, "ipv6"),
                        ({"provider": "fixed"}, "ip"),
                        ({"provider": "network-interface", "ifname": "no-such-if0"}, "ifname")):
        r = sysinfo(berth, **body)
        assert r.status_code == 400 and field in r.text, (body, r.text)
    assert api.get("/settings/sysinfo_config").json() == {"provider": "network-interface", "ifname": "lo"}

    assert sysinfo(berth, provider="generic").status_code == 200
    assert api.get("/cloudron/server_ip").json() == {"ip": ADDRESS_A}


def wait_for(what, predicate, timeout=20):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, f"{what} within {timeout}s"
        time.sleep(0.25)


def test_dynamic_dns_moves_the_records_when_the_address_changes(berth, bind, lookup):
    api = berth.api
    assert sysinfo(berth, provider="generic").status_code == 200
    assert api.get("/settings/dynamic_dns").json() == {"enabled": False}
    assert api.post("/settings/dynamic_dns", json={"enabled": True}).status_code == 200
    assert api.get("/settings/dynamic_dns").json() == {"enabled": True}

    app = berth.install("dyn", domain=bind.zone)
    assert bind.query("dyn", "A") == [ADDRESS_A]                 # written with the detected address
    # A record someone else made, pointing elsewhere, must stay as it is.
    bind.provider().upsert_records("other", "A", [ELSEWHERE])

    lookup.address = ADDRESS_B
    wait_for("BIND never answered the new address", lambda: bind.query("dyn", "A") == [ADDRESS_B])
    assert bind.query("other", "A") == [ELSEWHERE]
    assert api.get("/cloudron/server_ip").json() == {"ip": ADDRESS_B}
    events = api.get("/cloudron/eventlog", params={"action": "dyndns.update"}).json()["eventlogs"]
    assert events and events[0]["data"]["fromIp"] == ADDRESS_A and events[0]["data"]["toIp"] == ADDRESS_B
    assert f"dyn.{bind.zone}" in events[0]["data"]["records"]

    # Off: the schedule is gone, a further change is left alone.
    assert api.post("/settings/dynamic_dns", json={"enabled": False}).status_code == 200
    lookup.address = ADDRESS_A
    time.sleep(2.5)
    assert bind.query("dyn", "A") == [ADDRESS_B]
    lookup.address = ADDRESS_B
    assert berth.run(api.post(f"/apps/{app['id']}/uninstall"))["success"]
    assert bind.query("dyn", "A") == []
