"""The rfc2136 provider against a real BIND (tests/support/bind.py): signed updates appear in what
named serves, and a key the server does not accept is a DnsError carrying the server's answer."""
import base64
import os

import pytest

import dns_providers
from support.bind import running_bind


@pytest.fixture(scope="module")
def bind():
    with running_bind("rfc.test") as server:
        yield server


def provider(bind, zone=None, **override):
    return dns_providers.create("rfc2136", zone or bind.zone, bind.provider_config(**override))


def test_verify_add_update_delete(bind):
    p = provider(bind)
    p.verify()
    assert bind.query("_berth-verify", "TXT") == []  # the verification probe leaves nothing behind
    p.upsert_records("web", "A", ["192.0.2.10"])
    assert bind.query("web", "A") == ["192.0.2.10"] == p.get_records("web", "A")
    p.upsert_records("web", "A", ["192.0.2.11", "192.0.2.12"])
    assert bind.query("web", "A") == ["192.0.2.11", "192.0.2.12"]
    p.upsert_records("", "TXT", ["v=spf1 a -all"])
    assert p.get_records("@", "TXT") == ["v=spf1 a -all"]
    p.delete_records("web", "A")
    assert bind.query("web", "A") == [] == p.get_records("web", "A")
    p.delete_records("never-there", "A")  # no error for a record set that does not exist


def test_wrong_secret_is_refused_with_the_servers_answer(bind):
    p = provider(bind, secret=base64.b64encode(os.urandom(32)).decode())
    for attempt in (p.verify, lambda: p.upsert_records("evil", "A", ["192.0.2.66"])):
        with pytest.raises(dns_providers.DnsError, match=r"NOTAUTH \(BADSIG\)"):
            attempt()
    assert bind.query("evil", "A") == []


def test_unknown_key_name_is_refused(bind):
    with pytest.raises(dns_providers.DnsError, match=r"NOTAUTH \(BADKEY\)"):
        provider(bind, keyName="someone-else").verify()


def test_zone_the_server_does_not_serve_is_refused(bind):
    with pytest.raises(dns_providers.DnsError, match="REFUSED"):
        provider(bind, zone="elsewhere.test").verify()


def test_unreachable_server_is_a_dns_error(bind):
    from support.harness import free_port
    p = dns_providers.create("rfc2136", bind.zone, bind.provider_config(port=free_port()))
    with pytest.raises(dns_providers.DnsError, match="could not be asked"):
        p.verify()
