"""Vhost specs and their text: every name is checked when the file is rendered, so nothing a
caller (or a file on disk) hands over can break out of its place in the nginx syntax."""
import pytest

from reverse_proxy import main_config, vhost_files

CERTS = {"example.test": ("/d/certs/example.test.cert", "/d/certs/example.test.key"),
         "other.test": ("/d/certs/other.test.cert", "/d/certs/other.test.key")}


def certificate(host):
    return CERTS[host.split(".", 1)[1] if host.count(".") > 1 else host]


def render(spec, suffix=":8443"):
    return vhost_files.render(spec, certificate, main_config.listens("127.0.0.1", 8080),
                              main_config.listens("127.0.0.1", 8443, "ssl http2"), suffix)


def spec(**change):
    base = {"app_id": "app1", "fqdn": "app.example.test", "upstream_port": 3000}
    return vhost_files.spec(**{**base, **change})


@pytest.mark.parametrize("bad", [
    "app.example.test; evil", "a b.example.test", "-x.example.test", "x-.example.test", "x..example.test",
    "x.example.test\n", "x.example.test}", "é.example.test", "a" * 64 + ".example.test", "", None, 7,
    "$host.example.test", "x.example.test/", ".example.test",
])
def test_bad_hostnames_are_refused_everywhere(bad):
    for field in ("fqdn", "aliases", "redirects"):
        with pytest.raises(ValueError, match="is not a valid hostname"):
            spec(**{field: bad} if field == "fqdn" else {field: [bad]})


def test_a_hostname_stored_in_a_vhost_file_is_checked_again_when_rendered():
    # Security review finding 13: a name that got past validation into the database or a file.
    tampered = {**spec(), "aliases": ["x y;} include /etc.example.com"]}
    with pytest.raises(ValueError, match="aliases: .* is not a valid hostname"):
        render(tampered)


def test_wildcards_are_aliases_only():
    with pytest.raises(ValueError, match="wildcard"):
        spec(fqdn="*.example.test")
    assert spec(aliases=["*.example.test"])["aliases"] == ["*.example.test"]


def test_names_are_lowercased_and_deduplicated():
    s = spec(fqdn="App.Example.Test", aliases=["WWW.example.test", "app.example.test", "www.example.test"],
             redirects=["www.example.test", "Old.example.test", "old.example.test"])
    assert (s["fqdn"], s["aliases"], s["redirects"]) == ("app.example.test", ["www.example.test"],
                                                          ["old.example.test"])


@pytest.mark.parametrize("bad", ["../etc", "a/b", "", "-x", "x" * 65, "a.b", "app1\n", None])
def test_app_ids_that_could_not_name_a_file_are_refused(bad):
    with pytest.raises(ValueError, match="not a valid app id"):
        spec(app_id=bad)


@pytest.mark.parametrize("bad", [0, 65536, -1, True, "80", 80.0, None])
def test_upstream_port_must_be_a_port_number_when_running(bad):
    with pytest.raises(ValueError, match="port number"):
        spec(upstream_port=bad)


def test_a_page_state_needs_no_upstream_but_an_unknown_state_is_refused():
    assert spec(state="installing", upstream_port=None)["upstream_port"] is None
    with pytest.raises(ValueError, match="state must be one of"):
        spec(state="paused")


@pytest.mark.parametrize("bad", [("relative.cert", "/k.key"), ("/a b.cert", "/k.key"), ("/c.cert", "/k;.key"),
                                 ("/c.cert", "/k.key}"), ("/c$x.cert", "/k.key"), ("/c.cert",), None])
def test_unusable_certificate_paths_are_refused(bad):
    with pytest.raises((ValueError, TypeError)):
        vhost_files.render(spec(), lambda host: bad, ["listen 80;"], ["listen 443 ssl;"], "")


def test_running_app_is_proxied_and_plain_http_redirects():
    text = render(spec(aliases=["www.other.test"], redirects=["old.example.test"]))
    assert "proxy_pass http://127.0.0.1:3000;" in text
    assert "return 301 https://$host:8443$request_uri;" in text
    assert "return 301 https://app.example.test:8443$request_uri;" in text
    # One TLS server per certificate: nginx picks it by SNI.
    assert text.count("ssl_certificate /d/certs/example.test.cert;") == 2    # the app, the redirect
    assert text.count("ssl_certificate /d/certs/other.test.cert;") == 1
    assert "listen 127.0.0.1:8443 ssl http2;" in text and "listen 127.0.0.1:8080;" in text


def test_stopped_app_gets_its_page_and_no_upstream():
    text = render(spec(state="stopped", upstream_port=None), suffix="")
    assert "proxy_pass" not in text and "return 503 '<!DOCTYPE html>" in text
    assert "This app is stopped" in text and "return 301 https://$host$request_uri;" in text


def test_the_spec_comes_back_from_the_file_and_a_tampered_header_does_not():
    s = spec(aliases=["www.example.test"])
    text = render(s)
    assert vhost_files.read_spec(text) == s
    assert vhost_files.read_spec(text.replace('"state"', '"extra":1,"state"')) is None
    assert vhost_files.read_spec("# berth-vhost {not json") is None
    assert vhost_files.read_spec("server {}") is None


def test_a_name_served_by_another_app_is_a_conflict():
    from core.errors import Conflict
    first = spec()
    with pytest.raises(Conflict, match="already served by app app1"):
        vhost_files.check_taken([spec(app_id="app2", fqdn="b.example.test", redirects=["app.example.test"])],
                                [first])
    vhost_files.check_taken([spec(upstream_port=4000)], [first])   # the same app may change its vhost
