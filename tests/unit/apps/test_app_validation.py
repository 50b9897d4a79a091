"""apps.validation: locations, aliases and redirects (finding 13: the same DNS-label rule for all
of them, names stored normalised), ports, env, memory and access restrictions."""
import socket

import pytest

from core.errors import BadRequest, Conflict, NotFound

DOMAIN = "example.test"  # the domain of the db fixture (conftest.py)

NGINX_SYNTAX = "x y;} include /etc"


def test_location_and_domain_come_back_normalised(db):
    from apps import validation
    assert validation.check_location_and_domain(" Web ", " EXAMPLE.test. ") == ("web", DOMAIN)
    assert validation.check_location_and_domain("", DOMAIN) == ("", DOMAIN)


@pytest.mark.parametrize("location", [NGINX_SYNTAX, "a.b", "-web", "web-", "w_b", "x" * 64, "ü"])
def test_location_that_is_not_one_dns_label_is_refused(db, location):
    from apps import validation
    with pytest.raises(BadRequest, match="^location: must be a DNS label"):
        validation.check_location_and_domain(location, DOMAIN)


def test_unknown_domain_is_not_found(db):
    """The app's own domain: 404 "No such domain", as Cloudron answers (an alias or redirect
    domain stays a 400 naming its entry, below)."""
    from apps import validation
    with pytest.raises(NotFound, match="^No such domain 'nowhere.test'"):
        validation.check_location("web", "nowhere.test")


@pytest.mark.parametrize("restriction", ["everyone", 1, ["uid-1"], {"users": "uid-1"}, {"groups": [1]}])
def test_access_restriction_that_is_not_null_or_lists_of_ids_is_refused(restriction):
    from apps import validation
    with pytest.raises(BadRequest, match="^accessRestriction"):
        validation.check_access(restriction)


def test_access_restriction_is_stored_with_both_lists():
    from apps import validation
    assert validation.check_access(None) is None
    assert validation.check_access({"users": ["uid-1"]}) == {"users": ["uid-1"], "groups": []}


def test_alias_with_nginx_syntax_refused_naming_the_entry(db):
    from apps import validation
    with pytest.raises(BadRequest, match=r"^alternateDomains\.1\.subdomain: must be a DNS label"):
        validation.check_extra_domains([{"domain": DOMAIN, "subdomain": "ok"},
                                        {"domain": DOMAIN, "subdomain": NGINX_SYNTAX}], None)
    with pytest.raises(BadRequest, match=r"^redirectDomains\.0\.subdomain"):
        validation.check_extra_domains([{"domain": DOMAIN, "subdomain": "a b"}], None, "redirectDomains")
    with pytest.raises(BadRequest, match=r"^redirectDomains\.0\.domain: no such domain"):
        validation.check_extra_domains([{"domain": "other.test", "subdomain": "a"}], None, "redirectDomains")
    with pytest.raises(BadRequest, match=r"^alternateDomains\.0: needs"):
        validation.check_extra_domains([{"subdomain": "a"}], None)


def test_extra_domains_are_stored_normalised(db):
    from apps import validation
    assert validation.check_extra_domains([{"domain": "Example.TEST.", "subdomain": "WWW"}], None) == [
        {"domain": DOMAIN, "subdomain": "www"}]


def test_names_of_other_apps_are_taken_whatever_their_stored_spelling(make_app):
    from apps import validation
    owner = make_app("web", alternate_domains=[{"domain": DOMAIN, "subdomain": "alias"}],
                     redirect_domains=[{"domain": DOMAIN, "subdomain": "old"}])
    for location in ("web", "WEB", "alias", "old"):
        with pytest.raises(Conflict, match=owner.id):
            validation.check_location(location, DOMAIN)
    assert validation.check_location("web", DOMAIN, exclude_app=owner.id) == "web"
    # A damaged row (its domain gone) does not make the check fail for everyone.
    make_app("lost", domain="gone.test", alternate_domains=[{"domain": "gone.test", "subdomain": "x"}])
    assert validation.check_location("free", DOMAIN) == "free"


MANIFEST = {"tcpPorts": {"SSH_PORT": {"containerPort": 22}}, "udpPorts": {"DNS_PORT": {"containerPort": 53}}}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_port_bindings(make_app):
    from apps import validation
    port = _free_port()
    assert validation.check_port_bindings(MANIFEST, {"SSH_PORT": port}) == {"SSH_PORT": port}
    assert validation.check_port_bindings(MANIFEST, None) == {}
    for bindings, field in (({"NOPE": port}, "NOPE"), ({"SSH_PORT": 80}, "SSH_PORT"),
                            ({"SSH_PORT": 70000}, "SSH_PORT"), ({"SSH_PORT": 3000}, "SSH_PORT"),
                            ({"SSH_PORT": "2222"}, "SSH_PORT"), ({"SSH_PORT": True}, "SSH_PORT")):
        with pytest.raises(BadRequest, match=rf"^portBindings\.{field}:"):
            validation.check_port_bindings(MANIFEST, bindings)
    other = make_app("other", port_bindings={"SSH_PORT": port})
    with pytest.raises(Conflict, match=f"in use by app {other.id}"):
        validation.check_port_bindings(MANIFEST, {"DNS_PORT": port})


def test_ports_an_app_holds_itself_are_not_probed_on_the_host(make_app):
    """Configure and restore of an app keep its ports, which its own container has bound."""
    from apps import validation
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(Conflict, match="in use on this server"):
            validation.check_port_bindings(MANIFEST, {"SSH_PORT": port})
        app = make_app("mine", port_bindings={"SSH_PORT": port})
        assert validation.check_port_bindings(MANIFEST, {"SSH_PORT": port}, exclude_app=app.id) == {"SSH_PORT": port}


def test_env_memory_and_access():
    from apps import validation
    assert validation.check_env({"GREETING": "hi", "lower_ok": "x"}) == {"GREETING": "hi", "lower_ok": "x"}
    with pytest.raises(BadRequest, match=r"^env\.BAD-NAME:"):
        validation.check_env({"BAD-NAME": "x"})
    with pytest.raises(BadRequest, match=r"^env\.N:"):
        validation.check_env({"N": 1})
    assert validation.check_memory(None) == validation.check_memory(0) == 0
    assert validation.check_memory(validation.MIN_MEMORY) == validation.MIN_MEMORY
    for bad in (1000, True, "64m"):
        with pytest.raises(BadRequest, match="^memoryLimit:"):
            validation.check_memory(bad)
    assert validation.check_access(None) is None
    assert validation.check_access({"users": ["u"]}) == {"users": ["u"], "groups": []}
    with pytest.raises(BadRequest, match="^accessRestriction:"):
        validation.check_access(["u"])


def test_modern_install_names_become_the_seed_names():
    from apps import lifecycle
    assert lifecycle.seed_names({"subdomain": "web", "ports": {"P": 2000}, "domain": DOMAIN}) == {
        "location": "web", "portBindings": {"P": 2000}, "domain": DOMAIN}
    assert lifecycle.seed_names({"subdomain": "web", "location": "web"}) == {"location": "web"}
    with pytest.raises(BadRequest, match="^location: differs from subdomain"):
        lifecycle.seed_names({"subdomain": "web", "location": "other"})
