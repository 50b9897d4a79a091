"""The Postfix tables made from a snapshot: what each address means, and no way for a name to add
lines of its own (a table line is "key value")."""
import pytest

from mail_server import maps
from mail_server.errors import MailServerError


def snapshot(**changes):
    snap = {
        "hostname": "my.example.com",
        "domains": [{"domain": "example.com", "enabled": True, "catchAll": ["alice@example.com"],
                     "mailFromValidation": True, "relay": {"provider": "cloudron-smtp"}},
                    {"domain": "free.test", "enabled": True, "mailFromValidation": False,
                     "relay": {"provider": "external-smtp", "host": "smtp.relay.test", "port": 465,
                               "username": "u", "password": "p w:x"}},
                    {"domain": "off.test", "enabled": False}],
        "mailboxes": [{"address": "alice@example.com", "active": True},
                      {"address": "gone@example.com", "active": False}, {"address": "x@off.test", "active": True}],
        "aliases": [{"address": "info@example.com", "target": "alice@example.com"}],
        "lists": [{"address": "staff@example.com", "members": ["alice@example.com", "b@else.test"],
                   "membersOnly": True},
                  {"address": "empty@example.com", "members": [], "membersOnly": False}],
        "spamAcl": {"blocklist": ["*@spam.test", "bad.test"]},
    }
    snap.update(changes)
    return snap


def table(text):
    return dict(line.split(" ", 1) for line in text.splitlines())


def test_tables_of_a_snapshot():
    t = maps.tables(snapshot())
    assert table(t.files["domains"]) == {"example.com": "OK", "free.test": "OK"}
    assert table(t.files["mailboxes"]) == {"alice@example.com": "OK"}
    aliases = table(t.files["aliases"])
    # Mailboxes map to themselves first, so the catch-all only takes what matches nothing.
    assert aliases["alice@example.com"] == "alice@example.com"
    assert aliases["@example.com"] == "alice@example.com"
    assert aliases["info@example.com"] == "alice@example.com"
    assert aliases["staff@example.com"] == "alice@example.com,b@else.test"
    assert "empty@example.com" not in aliases and "x@off.test" not in aliases
    assert table(t.files["inactive"]) == {"gone@example.com": "REJECT mailbox is disabled"}
    assert t.lists == ["list_0"] and table(t.files["lists"]) == {"staff@example.com": "list_0"}
    assert table(t.files["list_0.senders"]) == {"alice@example.com": "OK", "b@else.test": "OK"}
    owners = table(t.files["sender_owners"])
    assert owners["info@example.com"] == "alice@example.com" and "@example.com" in owners
    assert "@free.test" not in owners        # mailFromValidation off
    assert table(t.files["sender_transports"]) == {"@free.test": "relay_smtps:[smtp.relay.test]:465"}
    assert table(t.files["relay_passwords"]) == {"@free.test": "u:p w:x"}
    assert t.relays


@pytest.mark.parametrize("address", ["a b@example.com", "a\n@example.com", "a@example.com\nevil@x.test OK",
                                     "a,b@example.com", "a@exa mple.com", "", None, "no-at-sign"])
def test_address_that_could_add_a_table_line_is_refused(address):
    with pytest.raises(MailServerError):
        maps.tables(snapshot(mailboxes=[{"address": address, "active": True}]))
    with pytest.raises(MailServerError):
        maps.tables(snapshot(lists=[{"address": "l@example.com", "members": [address]}]))


def test_relay_credentials_with_a_newline_are_refused():
    domains = snapshot()["domains"]
    domains[1]["relay"]["password"] = "p\nnext@line x"
    with pytest.raises(MailServerError, match="credentials"):
        maps.tables(snapshot(domains=domains))


def test_spam_list_entries_become_anchored_regexps():
    assert maps.glob_regexp("*@spam.test") == r"^.*@spam\.test$"
    assert maps.glob_regexp("bad.test") == r"^.*@(.*\.)?bad\.test$"
    with pytest.raises(MailServerError):
        maps.glob_regexp("a/b")
    blocklist = maps.tables(snapshot()).files["blocklist"].splitlines()
    assert blocklist == [r"/^.*@spam\.test$/ REJECT sender is blocked",
                         r"/^.*@(.*\.)?bad\.test$/ REJECT sender is blocked"]
