"""The public first-run and system routes of the Cloudron tag over HTTP: setup (dashboard domain and
DNS config, refused once activated), the public icon, the UI languages, password reset requests."""
import os
import struct
import zlib

from support.harness import Api, activate, unique

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_size(data):
    """(width, height) of a PNG whose chunks all check out (CRC), or AssertionError."""
    assert data.startswith(PNG_MAGIC), data[:16]
    pos, size, kinds = 8, None, []
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body, crc = data[pos + 8:pos + 8 + length], data[pos + 8 + length:pos + 12 + length]
        assert struct.unpack(">I", crc)[0] == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        kinds.append(kind)
        pos += 12 + length
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND", kinds
    return size


def _events(owner, action):
    r = owner.get("/cloudron/eventlog", params={"action": action, "per_page": 100})
    assert r.status_code == 200, r.text
    return r.json()["eventlogs"]


def test_setup_provisions_the_dashboard_domain_and_is_refused_once_activated(fresh_berth):
    anon = Api(fresh_berth.api)
    status = anon.get("/cloudron/status").json()
    assert (status["activated"], status["adminFqdn"]) == (False, None)

    # Validated before anything is stored: a missing dnsConfig, a provider config missing its secret.
    assert anon.post("/cloudron/setup", json={}).status_code == 400
    r = anon.post("/cloudron/setup", json={"dnsConfig": {"provider": "route53", "domain": "example.test",
                                                         "config": {"accessKeyId": "x"}}})
    assert r.status_code == 400 and r.json()["message"].startswith("config.secretAccessKey:"), r.text
    assert anon.get("/cloudron/status").json()["adminFqdn"] is None

    dns_config = {"provider": "noop", "domain": "Example.TEST", "zoneName": "example.test", "config": {},
                  "tlsConfig": {"provider": "fallback"}}
    r = anon.post("/cloudron/setup", json={"dnsConfig": dns_config})
    assert (r.status_code, r.json()) == (200, {}), r.text
    status = anon.get("/cloudron/status").json()
    assert (status["adminFqdn"], status["setup"]["active"], status["activated"]) == ("my.example.test", False, False)

    # Before activation a second setup starts over with the new settings (Cloudron's setup does too).
    r = anon.post("/cloudron/setup", json={"dnsConfig": {**dns_config, "provider": "manual",
                                                         "config": {"hyphenatedSubdomains": True}}})
    assert r.status_code == 200, r.text
    assert anon.get("/cloudron/status").json()["adminFqdn"] == "my-example.test"

    owner = activate(fresh_berth)
    r = anon.post("/cloudron/setup", json={"dnsConfig": dns_config})
    assert r.status_code == 409 and r.json() == {"status": "Conflict", "message": "Already setup"}, r.text

    # The domain went through the domains code: listed, with its DNS and TLS settings.
    listed = [d for d in owner.get("/domains").json()["domains"] if d["domain"] == "example.test"]
    assert listed == [{"domain": "example.test", "zoneName": "example.test", "provider": "manual", "locked": False,
                       "config": {"hyphenatedSubdomains": True},
                       "tlsConfig": {"provider": "fallback", "wildcard": False}}]
    config = owner.get("/config").json()
    assert (config["adminDomain"], config["adminFqdn"]) == ("example.test", "my-example.test")
    assert len(_events(owner, "cloudron.provision")) == 2
    # The dashboard domain cannot be removed from under the dashboard.
    r = owner.delete("/domains/example.test")
    assert r.status_code == 409 and "dashboard" in r.json()["message"], r.text


def test_avatar_is_public_and_the_branding_icon_once_set(fresh_berth):
    anon = Api(fresh_berth.api)
    r = anon.get("/cloudron/avatar")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.headers
    assert _png_size(r.content) == (128, 128)                  # the built-in default, a valid PNG

    # The icon the Branding routes store (tests/api/test_branding.py) is this file: it is what is served.
    branding = os.path.join(fresh_berth.data_dir, "branding")
    os.makedirs(branding, exist_ok=True)
    custom = PNG_MAGIC + b"custom-icon-bytes"
    with open(os.path.join(branding, "cloudron_avatar"), "wb") as f:
        f.write(custom)
    r = anon.get("/cloudron/avatar")
    assert (r.status_code, r.content) == (200, custom)
    assert r.headers["cache-control"] == "no-cache"


def test_languages_are_public(berth):
    r = Api(berth.api).get("/cloudron/languages")
    assert r.status_code == 200, r.text
    languages = r.json()["languages"]
    assert "en" in languages and all(isinstance(code, str) and code for code in languages)


def test_password_reset_request_answers_alike_for_known_and_unknown_users(owner):
    name = unique("reset")
    r = owner.post("/users", json={"username": name, "email": f"{name}@example.com", "password": "Pass-word-1"})
    assert r.status_code == 201, r.text
    user_id = r.json()["id"]
    anon = Api(owner.base)
    answers = [anon.post("/cloudron/password_reset_request", json={"identifier": identifier})
               for identifier in (name, f"{name}@Example.com", unique("nobody"), "nobody@nowhere.test")]
    assert [(a.status_code, a.json()) for a in answers] == [(202, {})] * 4, [a.text for a in answers]
    assert len({a.headers.get("content-length") for a in answers}) == 1

    assert anon.post("/cloudron/password_reset_request", json={}).status_code == 400
    assert anon.post("/cloudron/password_reset_request", json={"identifier": ""}).status_code == 400

    # Recorded for admins. This server has no way to send mail (no relay, no mail server), so no mail
    # went out; tests/api/test_mail.py checks that the reset mail arrives when there is one.
    events = [e for e in _events(owner, "user.password_reset_request")
              if e["data"]["identifier"] in (name, f"{name}@example.com")]
    assert len(events) == 2 and {e["data"]["userId"] for e in events} == {user_id}
    assert all(e["data"]["mailSent"] is False for e in events)
