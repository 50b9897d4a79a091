"""The rules of /network/blocklist: what a line may be, the caller never covered by the list, and
what the list becomes for nginx (checked by `nginx -t`) and for Postfix (looked up by `postmap`)."""
import os
import shutil
import subprocess

import pytest

from core.errors import BadRequest, Conflict
from mail_server import maps, postfix_config
from mail_server.errors import MailServerError
from mail_server.layout import Layout as MailLayout
from platform_settings import blocklist
from reverse_proxy import Proxy, apply
from reverse_proxy import blocklist as proxy_blocklist
from support.harness import free_port, require


def networks(text):
    return [(n, str(net)) for n, net in blocklist.parse(text)]


def test_comments_blank_lines_addresses_and_networks():
    text = "# office\n\n10.0.0.0/8\n 192.0.2.7  # one host\n2001:db8::/32\n::1\n10.1.2.3/16\n"
    assert networks(text) == [(3, "10.0.0.0/8"), (4, "192.0.2.7/32"), (5, "2001:db8::/32"), (6, "::1/128"),
                              (7, "10.1.0.0/16")]   # host bits after a prefix are ignored, as Cloudron does
    assert networks("") == [] and networks("# nothing\n") == []


@pytest.mark.parametrize("bad", ["example.com", "10.0.0.256", "10.0.0.0/33", "1.2.3.4; } server {",
                                 "10.0.0.1 10.0.0.2", "2001:db8::/129", "-1"])
def test_a_bad_line_is_a_400_naming_its_number(bad):
    with pytest.raises(BadRequest) as e:
        blocklist.parse(f"10.0.0.1\n# fine\n{bad}\n")
    assert e.value.field == "blocklist" and "line 3" in e.value.message, e.value.message


def test_too_long_and_too_many_are_refused():
    with pytest.raises(BadRequest):
        blocklist.parse("1" * (blocklist.MAX_CHARS + 1))
    with pytest.raises(BadRequest, match="at most"):
        blocklist.parse("10.0.0.1\n" * (blocklist.MAX_ENTRIES + 1))


@pytest.mark.parametrize("text, caller", [("10.0.0.0/8", "10.9.9.9"), ("192.0.2.7", "::ffff:192.0.2.7"),
                                          ("2001:db8::/32", "2001:db8::5"), ("0.0.0.0/0", "203.0.113.1")])
def test_a_list_covering_the_caller_is_a_409(text, caller):
    with pytest.raises(Conflict, match="your own address"):
        blocklist.check_not_self(blocklist.parse(f"# x\n{text}\n"), ["", "garbage", caller])


def test_other_callers_and_other_families_pass():
    entries = blocklist.parse("10.0.0.0/8\n2001:db8::/32\n")
    blocklist.check_not_self(entries, ["192.0.2.1", "2001:db9::1", "not an address", ""])


def test_nothing_but_a_network_reaches_the_nginx_syntax():
    with pytest.raises(ValueError):
        proxy_blocklist.normalise(["10.0.0.1; allow all"])
    assert proxy_blocklist.normalise(["10.0.0.1", " 10.0.0.1/32", "2001:DB8::1"]) == ["10.0.0.1/32", "2001:db8::1/128"]


def test_nginx_accepts_the_list_and_every_server_block_checks_it(tmp_path):
    require("nginx (Debian package nginx)", shutil.which("nginx") is not None)
    proxy = Proxy(str(tmp_path), free_port(), free_port(), "127.0.0.1")
    proxy.set_blocklist(["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"])   # nginx not running: stored
    assert proxy.blocklist() == ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]
    conf = proxy.render_main()
    assert "    geo $berth_blocked {\n        default 0;\n        10.0.0.0/8 1;" in conf
    assert conf.count(proxy_blocklist.CHECK) == conf.count("server {") == 1
    vhost = proxy.render_vhost(proxy.spec("a1", "app.example.test", 8000, redirects=["www.example.test"]),
                               lambda host: ("/x/cert.pem", "/x/key.pem"))
    assert vhost.count(proxy_blocklist.CHECK) == vhost.count("server {") == 4
    with apply.locked(proxy.layout):
        assert apply.apply(proxy.layout, {}, proxy.render_main)   # `nginx -t` of the candidate passed
    proxy.set_blocklist([])
    assert proxy.blocklist() == [] and "        default 0;\n    }" in proxy.render_main()


def test_postfix_refuses_a_blocked_client_on_port_25_and_on_submission(tmp_path):
    require("Postfix (Debian package postfix)", shutil.which("postmap") is not None)
    snapshot = {"hostname": "mail.example.test", "domains": [], "clientBlocklist": ["10.0.0.0/8", "2001:db8::/32"]}
    tables = maps.tables(snapshot)
    conf = tmp_path / "conf"
    (conf / "postfix").mkdir(parents=True)
    for name, text in tables.files.items():
        (conf / "postfix" / name).write_text(text)
    layout = MailLayout.of(str(tmp_path))
    (conf / "postfix" / "main.cf").write_text(
        postfix_config.main_cf(layout, str(conf), snapshot, tables, ("/x.crt", "/x.key"), "127.0.0.1", False))
    (conf / "postfix" / "master.cf").write_text(postfix_config.master_cf(
        {"smtp": 2525, "submission": 2587}, "127.0.0.1"))
    # the mtime trick of mail_server.control: postconf waits for files "being edited"
    for f in (conf / "postfix").iterdir():
        os.utime(f, (0, 0))
    cfg = str(conf / "postfix")
    table = f"cidr:{cfg}/client_blocklist"

    def postconf(*args):
        return subprocess.run(["postconf", "-c", cfg, *args], capture_output=True, text=True, check=True).stdout

    assert postconf("-x", "-h", "smtpd_client_restrictions").strip() == f"check_client_access {table}"
    submission = postconf("-P", "-x", "127.0.0.1:2587/inet/smtpd_client_restrictions")
    assert f"check_client_access {table},permit_sasl_authenticated,reject" in submission, submission

    def lookup(address):
        out = subprocess.run(["postmap", "-c", cfg, "-q", address, table], capture_output=True, text=True)
        return out.stdout.strip()

    assert lookup("10.1.2.3") == lookup("2001:db8::9") == "REJECT client is blocked"
    assert lookup("192.0.2.1") == ""
    with pytest.raises(MailServerError, match="invalid blocklist entry"):
        maps.tables({**snapshot, "clientBlocklist": ["10.0.0.1 OK\n0.0.0.0/0"]})
