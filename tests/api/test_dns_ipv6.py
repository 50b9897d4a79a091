"""AAAA records beside the A records: with a fixed IPv4 + IPv6 public address (sysinfo_config),
an app's install writes both into a real BIND (rfc2136), someone else's AAAA record needs
overwriteDns like an A record does, uninstall removes both, and dynamic DNS moves the AAAA record
when the IPv6 address changes."""
import time

import pytest

from support.apps_env import berth_with_zone
from support.bind import running_bind

IPV4, IPV6 = "192.0.2.66", "2001:db8::66"


@pytest.fixture(scope="module")
def bind():
    with running_bind("six.example.test") as server:
        yield server


@pytest.fixture(scope="module")
def berth(parts, bind, tmp_path_factory):
    def fixed_address(api):
        r = api.post("/settings/sysinfo_config", json={"provider": "fixed", "ipv4": IPV4, "ipv6": IPV6})
        assert r.status_code == 200, r.text

    # dynamic DNS checks every second here
    with berth_with_zone(parts, bind, tmp_path_factory, {"BERTH_DYNAMIC_DNS_PATTERN": "* * * * * *"},
                         prepare=fixed_address) as env:
        yield env


def test_install_writes_a_and_aaaa_and_uninstall_removes_both(berth, bind):
    r = berth.request_install("web6", domain=bind.zone)
    assert r.status_code == 202, r.text
    task = berth.wait_task(r.json()["taskId"])
    assert task["success"], task
    assert bind.query("web6", "A") == [IPV4] and bind.query("web6", "AAAA") == [IPV6]
    log = berth.task_log(task["id"])
    assert f"DNS: web6.{bind.zone} AAAA {IPV6} (rfc2136)" in log, log

    # sync_dns puts back a deleted AAAA record
    rfc = bind.provider()
    rfc.delete_records("web6", "AAAA")
    r_sync = berth.api.post("/cloudron/sync_dns", json={})
    assert r_sync.status_code == 201, r_sync.text
    assert berth.wait_task(r_sync.json()["taskId"])["success"]
    assert bind.query("web6", "AAAA") == [IPV6]

    task = berth.run(berth.api.post(f"/apps/{r.json()['id']}/uninstall"))
    assert task["success"], task
    assert bind.query("web6", "A") == [] and bind.query("web6", "AAAA") == []


def test_someone_elses_aaaa_record_needs_overwrite_dns(berth, bind):
    rfc = bind.provider()
    rfc.upsert_records("taken6", "AAAA", ["2001:db8::bad"])
    r = berth.api.get(f"/domains/{bind.zone}/dns_check", params={"subdomain": "taken6"})
    assert r.status_code == 200 and r.json() == {"needsOverwrite": True}, r.text
    r = berth.request_install("taken6", domain=bind.zone)
    assert r.status_code == 409 and "overwriteDns" in r.json()["message"], r.text
    assert bind.query("taken6", "AAAA") == ["2001:db8::bad"]

    app = berth.install("taken6", domain=bind.zone, overwriteDns=True)
    assert bind.query("taken6", "AAAA") == [IPV6] and bind.query("taken6", "A") == [IPV4]
    assert berth.run(berth.api.post(f"/apps/{app['id']}/uninstall"))["success"]
    assert bind.query("taken6", "AAAA") == []


def test_dynamic_dns_moves_the_aaaa_record_when_the_ipv6_address_changes(berth, bind):
    api = berth.api
    app = berth.install("dyn6", domain=bind.zone)
    assert bind.query("dyn6", "AAAA") == [IPV6]
    assert api.post("/settings/dynamic_dns", json={"enabled": True}).status_code == 200
    try:
        new6 = "2001:db8::77"
        assert api.post("/settings/sysinfo_config", json={"provider": "fixed", "ipv4": IPV4,
                                                          "ipv6": new6}).status_code == 200
        deadline = time.time() + 20
        while bind.query("dyn6", "AAAA") != [new6]:
            assert time.time() < deadline, "BIND never answered the new IPv6 address"
            time.sleep(0.25)
        assert bind.query("dyn6", "A") == [IPV4]
        events = api.get("/cloudron/eventlog", params={"action": "dyndns.update"}).json()["eventlogs"]
        assert events and events[0]["data"]["fromIp"] == IPV6 and events[0]["data"]["toIp"] == new6
    finally:
        assert api.post("/settings/dynamic_dns", json={"enabled": False}).status_code == 200
    assert berth.run(api.post(f"/apps/{app['id']}/uninstall"))["success"]
    assert bind.query("dyn6", "A") == [] and bind.query("dyn6", "AAAA") == []
