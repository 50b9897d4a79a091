"""ACME certificates against a real CA: Debian's pebble on private ports, validating HTTP-01 through
Berth's own nginx; renewal; a refused order; user certificates for one app (configure/cert)."""
import datetime
import os
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from support.acme_env import berth_with_pebble, served_leaf, verifies_against
from support.apps_env import _berth, unique
from support.bind import BindServer
from support.certs import make_cert
from support.harness import require
from support.pebble import Pebble

ACME_DOMAIN = "acme.test"


@pytest.fixture(scope="module")
def berth(parts, tmp_path_factory):
    with berth_with_pebble(parts, tmp_path_factory, ACME_DOMAIN) as env:
        yield env


def renew_tasks(berth):
    r = berth.api.get("/tasks", params={"type": "renewcerts", "per_page": 100})
    assert r.status_code == 200, r.text
    return r.json()["tasks"]


def wait_renew_task(berth, known, timeout=60):
    """The renewcerts task queued after `known` (ids), once it has finished."""
    deadline = time.time() + timeout
    while True:
        new = [t for t in renew_tasks(berth) if t["id"] not in known]
        if new:
            return berth.wait_task(new[0]["id"], timeout)
        assert time.time() < deadline, "no renewcerts task was queued"
        time.sleep(0.2)


def is_pebble_issued(cert):
    return "Pebble" in cert.issuer.rfc4514_string()


@pytest.fixture(scope="module")
def issued(berth):
    """An app on the letsencrypt domain, once its order has been through."""
    known = {t["id"] for t in renew_tasks(berth)}
    app = berth.install(unique("web"), domain=ACME_DOMAIN)
    task = wait_renew_task(berth, known)
    assert task["success"], (task["message"], berth.task_log(task["id"]), berth.pebble.log())
    return app


def test_http01_certificate_is_issued_by_the_ca_and_served(berth, issued):
    host = issued["fqdn"]
    root = berth.pebble.root_pem()
    leaf = served_leaf(berth, host)
    assert is_pebble_issued(leaf), leaf.issuer
    assert verifies_against(berth, host, root)
    # The challenge answers are withdrawn once the order is through.
    status, _, _ = berth.curl(host, "/.well-known/acme-challenge/nothing-here", https=False)
    assert status == 404
    # Anything else over plain HTTP still redirects to HTTPS.
    status, headers, _ = berth.curl(host, "/x", https=False)
    assert status == 301 and headers["location"].startswith(f"https://{host}")


def test_renewal_replaces_a_certificate_about_to_expire(berth, issued):
    host = issued["fqdn"]
    before = served_leaf(berth, host)
    # A certificate five days from its end, where the ordered one is kept.
    cert, key = make_cert([host], days=5)
    base = os.path.join(berth.data_dir, "certs", f"acme_{host}")
    with open(base + ".cert", "w") as f:
        f.write(cert)
    with open(base + ".key", "w") as f:
        f.write(key)
    task = berth.run(berth.api.post("/cloudron/renew_certs", json={}))
    assert task["success"], (task, berth.task_log(task["id"]))
    assert f"{host}: certificate issued" in berth.task_log(task["id"])
    after = served_leaf(berth, host)
    assert is_pebble_issued(after) and after.serial_number != before.serial_number
    assert after.not_valid_after_utc > datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=30)
    assert verifies_against(berth, host, berth.pebble.root_pem())


def test_refused_order_keeps_the_fallback_fails_the_task_and_notifies(berth):
    location = unique("bad")
    host = f"{location}.{ACME_DOMAIN}"
    berth.pebble.add_a(host, "127.0.0.2")      # pebble validates where nothing listens
    known = {t["id"] for t in renew_tasks(berth)}
    app = berth.install(location, domain=ACME_DOMAIN)
    assert app["installationState"] == "installed"   # the app itself is fine
    task = wait_renew_task(berth, known)
    assert not task["success"]
    message = task["error"]["message"]
    assert host in message and "127.0.0.2" in message, message      # the CA's own words
    leaf = served_leaf(berth, host)
    assert not is_pebble_issued(leaf) and "Berth self-signed" in leaf.issuer.rfc4514_string()
    notes = berth.api.get("/notifications").json()["notifications"]
    assert any(host in n["title"] for n in notes), notes


def test_configure_cert_wrong_key_is_refused_and_right_pair_served(berth, issued):
    host, app_id = issued["fqdn"], issued["id"]
    location = host.split(".")[0]
    cert, key = make_cert([host], days=60)
    _, other_key = make_cert([host], days=60)
    path = f"/apps/{app_id}/configure/cert"
    body = {"domain": ACME_DOMAIN, "subdomain": location}
    r = berth.api.post(path, json={**body, "cert": cert, "key": other_key})
    assert r.status_code == 400 and "key" in r.text, r.text
    other_cert, other_cert_key = make_cert(["elsewhere.test"], days=60)
    r = berth.api.post(path, json={**body, "cert": other_cert, "key": other_cert_key})
    assert r.status_code == 400 and host in r.text, r.text
    task = berth.run(berth.api.post(path, json={**body, "cert": cert, "key": key}))
    assert task["success"], (task, berth.task_log(task["id"]))
    served = served_leaf(berth, host)
    assert served.public_bytes(serialization.Encoding.PEM).decode() == cert
    # null removes it: the ordered certificate is served again
    task = berth.run(berth.api.post(path, json={**body, "cert": None, "key": None}))
    assert task["success"], task
    assert is_pebble_issued(served_leaf(berth, host))


# ---- DNS-01 and wildcard: pebble looks the challenge up in a real BIND, written through rfc2136 ----

WILD_DOMAIN = "wild.test"


@pytest.fixture(scope="module")
def wild(parts, tmp_path_factory):
    require("BIND (Debian package bind9)", BindServer.available())
    dns = BindServer(WILD_DOMAIN).start()
    env = _berth(parts, tmp_path_factory)
    pebble = Pebble(str(tmp_path_factory.mktemp("pebble-dns")), env.http_port,
                    dns_server=f"127.0.0.1:{dns.port}").start()
    env.env.update({"BERTH_ACME_DIRECTORY": pebble.directory, "BERTH_ACME_CA_BUNDLE": pebble.ca_bundle})
    env.pebble, env.dns = pebble, dns
    try:
        env.start()
        r = env.api.post("/domains", json={"domain": WILD_DOMAIN, "provider": "rfc2136",
                                           "config": dns.provider_config(),
                                           "tlsConfig": {"provider": "letsencrypt-staging", "wildcard": True}})
        assert r.status_code == 201, r.text
        yield env
    finally:
        env.close()
        pebble.stop()
        dns.stop()


def test_dns01_wildcard_certificate_is_issued_and_served(wild):
    known = {t["id"] for t in renew_tasks(wild)}
    app = wild.install(unique("w"), domain=WILD_DOMAIN)
    task = wait_renew_task(wild, known)
    log = wild.task_log(task["id"])
    assert task["success"], (task["message"], log, wild.pebble.log())
    assert "dns-01 through rfc2136" in log
    host = app["fqdn"]
    leaf = served_leaf(wild, host)
    assert is_pebble_issued(leaf)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(san.get_values_for_type(x509.DNSName)) == sorted([f"*.{WILD_DOMAIN}", WILD_DOMAIN])
    assert verifies_against(wild, host, wild.pebble.root_pem())
    # the challenge record is gone once the order is through
    assert wild.dns.query("_acme-challenge", "TXT") == []
