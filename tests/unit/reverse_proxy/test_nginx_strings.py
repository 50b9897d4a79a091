"""Texts embedded in nginx's configuration: quoted so they stay one string, `$` refused."""
import pytest

from reverse_proxy import main_config, pages


def test_quotes_and_backslashes_are_escaped():
    assert pages.nginx_string("it's") == "'it\\'s'"
    assert pages.nginx_string("a\\b") == "'a\\\\b'"
    assert pages.nginx_string("a'; include /etc/passwd; '") == "'a\\'; include /etc/passwd; \\''"


def test_dollar_is_refused_rather_than_mangled():
    with pytest.raises(ValueError, match=r"\$"):
        pages.nginx_string("costs $5")


def test_every_page_is_a_valid_nginx_string():
    for state in pages.PAGES:
        text = pages.state_page(state, "app.example.test")
        assert text.startswith("'<!DOCTYPE html>") and text.endswith("'")
        assert pages.PAGES[state][0] in text and "app.example.test" in text
    assert "This app is not responding" in pages.unreachable_page("x.example.test")


def test_listen_directives():
    assert main_config.listens("127.0.0.1", 80) == ["listen 127.0.0.1:80;"]
    assert main_config.listens("::1", 443, "ssl http2") == ["listen [::1]:443 ssl http2;"]
    assert main_config.listens("", 80, "default_server", ipv6=True) == \
        ["listen 80 default_server;", "listen [::]:80 default_server;"]
    assert main_config.listens("", 80, ipv6=False) == ["listen 80;"]
