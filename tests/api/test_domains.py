"""Domains through the HTTP API of a real server (SQLite and PostgreSQL): providers, TLS settings,
fallback certificates (Berth's self-signed one, or an uploaded pair that must fit the domain)."""
import base64
import datetime
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from core.masking import MASK
from support.apps_env import _berth, berth_with_zone
from support.bind import running_bind
from support.certs import make_cert
from support.harness import free_port, unique


def new_domain():
    return f"{unique('d')}.example.test".lower()


def san(cert_pem):
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    return sorted(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
                  .value.get_values_for_type(x509.DNSName))


def cert_files(berth, domain):
    base = os.path.join(berth.data_dir, "certs", domain)
    return base + ".cert", base + ".key"


def read(path):
    with open(path) as f:
        return f.read()


def add(owner, domain, **fields):
    body = {"domain": domain, "provider": "noop", "config": {}, **fields}
    return owner.post("/domains", json=body)


def test_add_list_get_update_delete(owner):
    domain = new_domain()
    r = add(owner, domain.upper(), zoneName="example.test")
    assert r.status_code == 201, r.text
    assert r.json() == {"domain": domain, "config": {"hyphenatedSubdomains": False}}
    assert add(owner, domain).status_code == 409

    listed = [d for d in owner.get("/domains").json()["domains"] if d["domain"] == domain]
    assert listed == [{"domain": domain, "zoneName": "example.test", "provider": "noop", "locked": False,
                       "config": {"hyphenatedSubdomains": False},
                       "tlsConfig": {"provider": "fallback", "wildcard": False}}]

    r = owner.get(f"/domains/{domain}")
    assert r.status_code == 200, r.text
    got = r.json()
    assert set(got) == {"domain", "zoneName", "provider", "config", "tlsConfig", "fallbackCertificate",
                        "locked"}
    assert got["tlsConfig"] == {"provider": "fallback", "wildcard": False}
    assert set(got["fallbackCertificate"]) == {"cert"} and "PRIVATE KEY" not in r.text

    r = owner.put(f"/domains/{domain}", json={"provider": "manual", "config": {"hyphenatedSubdomains": True},
                                              "tlsConfig": {"provider": "letsencrypt-prod"}})
    assert r.status_code == 204, r.text
    got = owner.get(f"/domains/{domain}").json()
    assert (got["provider"], got["config"], got["tlsConfig"], got["zoneName"]) == (
        "manual", {"hyphenatedSubdomains": True}, {"provider": "letsencrypt-prod", "wildcard": False},
        "example.test")

    r = owner.get(f"/domains/{domain}/dns_check", params={"subdomain": "app"})
    assert r.json() == {"needsOverwrite": False}
    assert owner.delete(f"/domains/{domain}").status_code == 204
    for r in (owner.get(f"/domains/{domain}"), owner.delete(f"/domains/{domain}"),
              owner.put(f"/domains/{domain}", json={"provider": "noop", "config": {}}),
              owner.get(f"/domains/{domain}/dns_check")):
        assert r.status_code == 404 and r.json()["status"] == "Not Found", r.text
    assert domain not in [d["domain"] for d in owner.get("/domains").json()["domains"]]


def test_generated_fallback_certificate(berth, owner):
    domain = new_domain()
    assert add(owner, domain).status_code == 201
    cert = owner.get(f"/domains/{domain}").json()["fallbackCertificate"]["cert"]
    assert san(cert) == sorted([domain, f"*.{domain}"])
    parsed = x509.load_pem_x509_certificate(cert.encode())
    assert parsed.issuer == parsed.subject  # self-signed
    a_year = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=365)
    assert parsed.not_valid_after_utc > a_year
    # The files nginx reads: the same certificate, and its key (readable by the owner only).
    cert_path, key_path = cert_files(berth, domain)
    assert read(cert_path) == cert
    assert os.stat(key_path).st_mode & 0o077 == 0
    key = serialization.load_pem_private_key(read(key_path).encode(), None)
    assert key.public_key().public_numbers() == parsed.public_key().public_numbers()
    # Updating other settings keeps the certificate; removing the domain removes the files.
    assert owner.put(f"/domains/{domain}", json={"provider": "wildcard", "config": {}}).status_code == 204
    assert owner.get(f"/domains/{domain}").json()["fallbackCertificate"]["cert"] == cert
    assert owner.delete(f"/domains/{domain}").status_code == 204
    assert not os.path.exists(cert_path) and not os.path.exists(key_path)


def test_uploaded_certificate_is_used_and_can_be_reset(berth, owner):
    domain = new_domain()
    cert, key = make_cert([f"*.{domain}", domain], key=rsa.generate_private_key(65537, 2048))
    r = add(owner, domain, fallbackCertificate={"cert": cert, "key": key})
    assert r.status_code == 201, r.text
    r = owner.get(f"/domains/{domain}")
    assert r.json()["fallbackCertificate"] == {"cert": cert}
    assert "PRIVATE KEY" not in r.text
    cert_path, key_path = cert_files(berth, domain)
    assert (read(cert_path), read(key_path)) == (cert, key)
    events = owner.get("/cloudron/eventlog", params={"action": "domain.add", "per_page": 100}).text
    assert domain in events and "PRIVATE KEY" not in events and "BEGIN CERTIFICATE" not in events

    # Not mentioning the certificate keeps it; a certificate for the domain itself only is accepted.
    assert owner.put(f"/domains/{domain}", json={"provider": "manual", "config": {}}).status_code == 204
    assert read(cert_path) == cert
    only_domain, only_key = make_cert([domain])
    r = owner.put(f"/domains/{domain}", json={"provider": "manual", "config": {},
                                              "fallbackCertificate": {"cert": only_domain, "key": only_key}})
    assert r.status_code == 204, r.text
    assert (read(cert_path), read(key_path)) == (only_domain, only_key)

    # null: back to a self-signed certificate made by Berth.
    r = owner.put(f"/domains/{domain}", json={"provider": "manual", "config": {},
                                              "fallbackCertificate": None})
    assert r.status_code == 204, r.text
    reset = owner.get(f"/domains/{domain}").json()["fallbackCertificate"]["cert"]
    assert reset != only_domain and san(reset) == sorted([domain, f"*.{domain}"])
    assert read(cert_path) == reset
    owner.delete(f"/domains/{domain}")


@pytest.mark.parametrize("case", ["mismatched", "not_covering", "sibling", "expired", "not_yet_valid",
                                  "garbage_cert", "garbage_key", "encrypted_key", "missing_key"])
def test_bad_fallback_certificate_is_400_naming_the_field(owner, case):
    domain = new_domain()
    cert, key = make_cert([f"*.{domain}"])
    expected = "fallbackCertificate.cert"
    if case == "mismatched":
        key = make_cert([f"*.{domain}"])[1]
        expected = "fallbackCertificate.key: does not belong to the certificate"
    elif case == "not_covering":
        cert, key = make_cert(["other.test", "*.other.test"])
        expected = f"fallbackCertificate.cert: is for other.test, *.other.test, not for {domain}"
    elif case == "sibling":
        cert, key = make_cert(["example.test", "www.example.test"])
    elif case == "expired":
        cert, key = make_cert([f"*.{domain}"], days=-1, starts_in_days=-30)
        expected = "fallbackCertificate.cert: expired on"
    elif case == "not_yet_valid":
        cert, key = make_cert([f"*.{domain}"], days=60, starts_in_days=10)
        expected = "fallbackCertificate.cert: is not valid before"
    elif case == "garbage_cert":
        cert = "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"
        expected = "fallbackCertificate.cert: is not a PEM certificate"
    elif case == "garbage_key":
        key = "hello"
        expected = "fallbackCertificate.key: is not a PEM private key"
    elif case == "encrypted_key":
        pk = serialization.load_pem_private_key(key.encode(), None)
        key = pk.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.BestAvailableEncryption(b"secret")).decode()
        expected = "fallbackCertificate.key: must not be protected by a passphrase"
    pair = {"cert": cert} if case == "missing_key" else {"cert": cert, "key": key}
    if case == "missing_key":
        expected = "fallbackCertificate.key: is required"
    r = add(owner, domain, fallbackCertificate=pair)
    assert r.status_code == 400, r.text
    assert r.json()["message"].startswith(expected), r.json()
    assert owner.get(f"/domains/{domain}").status_code == 404  # nothing stored
    # The same checks guard updates, and a rejected update changes nothing.
    assert add(owner, domain).status_code == 201
    before = owner.get(f"/domains/{domain}").json()
    r = owner.put(f"/domains/{domain}", json={"provider": "manual", "config": {},
                                              "fallbackCertificate": pair})
    assert r.status_code == 400 and r.json()["message"].startswith(expected), r.text
    assert owner.get(f"/domains/{domain}").json() == before
    owner.delete(f"/domains/{domain}")


@pytest.mark.parametrize("fields, message", [
    ({"domain": None}, "domain: is required"),
    ({"domain": "not a domain"}, "domain: "),
    ({"domain": "nodot"}, "domain: "),
    ({"provider": None}, "provider: is required"),
    ({"provider": "bogus"}, "provider: 'bogus' is not one of"),
    ({"provider": "cloudflare"}, "config.token: is required"),
    ({"config": None}, "config: is required"),
    ({"config": {"hyphenatedSubdomains": "yes"}},
     "config.hyphenatedSubdomains: 'yes' is not of type 'boolean'"),
    ({"zoneName": "elsewhere.test"}, "zoneName: must be"),
    ({"tlsConfig": {"provider": "selfmade"}}, "tlsConfig.provider: 'selfmade' is not one of"),
    ({"tlsConfig": {"provider": "letsencrypt-prod", "wildcard": True}},
     "tlsConfig.wildcard: needs a programmable"),
    ({"tlsConfig": {"provider": "fallback", "wildcard": True}}, "tlsConfig.wildcard: needs a Let's Encrypt"),
    ({"fallbackCertificate": "pem"}, "fallbackCertificate: 'pem' is not of type 'object'"),
])
def test_bad_input_is_400_naming_the_field(owner, fields, message):
    body = {"domain": new_domain(), "provider": "noop", "config": {}}
    for key, value in fields.items():
        if value is None:
            del body[key]
        else:
            body[key] = value
    r = owner.post("/domains", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["message"].startswith(message), r.json()


def test_letsencrypt_is_stored_but_the_fallback_certificate_is_served(berth, owner):
    domain = new_domain()
    r = add(owner, domain, tlsConfig={"provider": "letsencrypt-staging"})
    assert r.status_code == 201, r.text
    assert owner.get(f"/domains/{domain}").json()["tlsConfig"] == {"provider": "letsencrypt-staging",
                                                                  "wildcard": False}
    # Every list item carries tlsConfig, as the seed-era and current servers list it.
    listed = owner.get("/domains").json()["domains"]
    assert all("tlsConfig" in d for d in listed), listed
    assert [d["tlsConfig"] for d in listed if d["domain"] == domain] == [
        {"provider": "letsencrypt-staging", "wildcard": False}]
    served = owner.get(f"/domains/{domain}").json()["fallbackCertificate"]["cert"]
    assert read(cert_files(berth, domain)[0]) == served
    owner.delete(f"/domains/{domain}")


@pytest.mark.parametrize("role", ["user", "usermanager", "mailmanager"])
def test_only_admins_manage_domains(owner, make_user, role):
    domain = new_domain()
    assert add(owner, domain).status_code == 201
    _, api = make_user(role)
    for r in (api.get("/domains"), api.get(f"/domains/{domain}"), api.post("/domains", json={
              "domain": new_domain(), "provider": "noop", "config": {}}),
              api.put(f"/domains/{domain}", json={"provider": "manual", "config": {}}),
              api.delete(f"/domains/{domain}"), api.get(f"/domains/{domain}/dns_check")):
        assert r.status_code == 403, r.text
    _, admin = make_user("admin")
    assert admin.get(f"/domains/{domain}").status_code == 200
    assert admin.put(f"/domains/{domain}", json={"provider": "manual", "config": {}}).status_code == 204
    assert admin.delete(f"/domains/{domain}").status_code == 204



# ---- DNS providers that write records (rfc2136 against a real BIND) ----------------------------

PUBLIC_IP = "192.0.2.80"


@pytest.fixture(scope="module")
def bind():
    with running_bind("rfc.example.test") as server:
        yield server


def test_rfc2136_credentials_are_verified_and_the_secret_masked(owner, bind):
    domain = bind.zone
    wrong = base64.b64encode(os.urandom(32)).decode()
    r = add(owner, domain, provider="rfc2136", config=bind.provider_config(secret=wrong))
    assert r.status_code == 400, r.text
    assert "NOTAUTH (BADSIG)" in r.json()["message"] and wrong not in r.text
    assert owner.get(f"/domains/{domain}").status_code == 404          # nothing saved

    r = add(owner, domain, provider="rfc2136", config=bind.provider_config())
    assert r.status_code == 201, r.text
    assert r.json()["config"]["secret"] == MASK
    got = owner.get(f"/domains/{domain}").json()
    assert got["config"]["secret"] == MASK and got["config"]["keyName"] == bind.key_name
    assert bind.secret not in owner.get("/domains").text

    # the mask sent back keeps the stored secret (and it is verified again with it)
    assert owner.put(f"/domains/{domain}", json={"provider": "rfc2136", "config": got["config"]}).status_code == 204
    # a wrong key in an update is refused and the stored config stays
    r = owner.put(f"/domains/{domain}", json={"provider": "rfc2136",
                                              "config": bind.provider_config(keyName="nobody")})
    assert r.status_code == 400 and "BADKEY" in r.json()["message"], r.text
    assert owner.get(f"/domains/{domain}").json()["config"]["keyName"] == bind.key_name
    assert owner.delete(f"/domains/{domain}").status_code == 204


@pytest.fixture(scope="module")
def dns_apps(parts, bind, tmp_path_factory):
    with berth_with_zone(parts, bind, tmp_path_factory, {"BERTH_PUBLIC_IP": PUBLIC_IP}) as env:
        yield env


def rfc(bind):
    return bind.provider()


def test_app_records_follow_install_location_change_and_uninstall(dns_apps, bind):
    r = dns_apps.request_install("web", domain=bind.zone)
    assert r.status_code == 202, r.text
    task = dns_apps.wait_task(r.json()["taskId"])
    assert task["success"], task
    assert bind.query("web", "A") == [PUBLIC_IP]
    assert f"DNS: web.{bind.zone} A {PUBLIC_IP} (rfc2136)" in dns_apps.task_log(task["id"])
    app = dns_apps.app(r.json()["id"])

    task = dns_apps.run(dns_apps.api.post(f"/apps/{app['id']}/configure/location",
                                          json={"location": "moved", "domain": bind.zone}))
    assert task["success"], task
    assert bind.query("moved", "A") == [PUBLIC_IP] and bind.query("web", "A") == [], dns_apps.task_log(task["id"])

    task = dns_apps.run(dns_apps.api.post(f"/apps/{app['id']}/uninstall"))
    assert task["success"], task
    assert bind.query("moved", "A") == []
    assert "DNS: removing moved." in dns_apps.task_log(task["id"])


def test_someone_elses_record_needs_overwrite_dns(dns_apps, bind):
    rfc(bind).upsert_records("taken", "A", ["198.51.100.7"])
    r = dns_apps.api.get(f"/domains/{bind.zone}/dns_check", params={"subdomain": "taken"})
    assert r.status_code == 200 and r.json() == {"needsOverwrite": True}, r.text
    assert dns_apps.api.get(f"/domains/{bind.zone}/dns_check", params={"subdomain": "free"}).json() == {
        "needsOverwrite": False}

    before = dns_apps.api.get("/apps").json()["apps"]
    r = dns_apps.request_install("taken", domain=bind.zone)
    assert r.status_code == 409 and "overwriteDns" in r.json()["message"], r.text
    assert dns_apps.api.get("/apps").json()["apps"] == before          # nothing queued, nothing made
    assert bind.query("taken", "A") == ["198.51.100.7"]

    app = dns_apps.install("taken", domain=bind.zone, overwriteDns=True)
    assert bind.query("taken", "A") == [PUBLIC_IP]
    assert dns_apps.run(dns_apps.api.post(f"/apps/{app['id']}/uninstall"))["success"]
    assert bind.query("taken", "A") == []


def test_sync_dns_restores_a_deleted_record(dns_apps, bind):
    app = dns_apps.install("synced", domain=bind.zone)
    rfc(bind).delete_records("synced", "A")
    assert bind.query("synced", "A") == []
    r = dns_apps.api.post("/cloudron/sync_dns", json={})
    assert r.status_code == 201, r.text
    task = dns_apps.wait_task(r.json()["taskId"])
    assert task["success"] and task["percent"] == 100, task
    assert bind.query("synced", "A") == [PUBLIC_IP]
    assert dns_apps.api.get(f"/tasks/{r.json()['taskId']}").json()["type"] == "syncDnsRecords"
    assert dns_apps.api.post("/cloudron/sync_dns", json={"domain": "nowhere.test"}).status_code == 404
    assert dns_apps.run(dns_apps.api.post(f"/apps/{app['id']}/uninstall"))["success"]


def test_no_public_ip_writes_no_record_and_says_so(parts, bind, tmp_path_factory):
    env = _berth(parts, tmp_path_factory)
    # No BERTH_PUBLIC_IP and no sysinfo config: the address is looked up (`generic`); here the
    # lookup service cannot be reached.
    env.env["BERTH_IP_LOOKUP_URL"] = f"http://127.0.0.1:{free_port()}/"
    try:
        env.start()
        assert env.api.post("/domains", json={"domain": f"sub.{bind.zone}", "zoneName": bind.zone,
                                              "provider": "rfc2136", "config": bind.provider_config()}
                            ).status_code == 201
        r = env.request_install("noip", domain=f"sub.{bind.zone}")
        assert r.status_code == 202, r.text
        task = env.wait_task(r.json()["taskId"])
        assert task["success"], task
        assert bind.query("noip.sub", "A") == []
        assert "public IP unknown" in env.task_log(task["id"])
    finally:
        env.close()
