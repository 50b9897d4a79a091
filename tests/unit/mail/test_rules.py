"""Pure rules of the mail package: which relay fields are stored (and the masked password kept),
how found DNS records are judged, and the snapshot handed to the mail server."""
import os
import stat
import uuid

import pytest

from core.errors import BadRequest
from core.masking import MASK


def test_relay_keeps_only_its_providers_fields_and_a_mask_keeps_the_password():
    from mail.settings import clean_relay
    stored = {"provider": "external-smtp", "host": "smtp.test", "port": 587, "username": "u", "password": "secret-1"}
    got = clean_relay({"provider": "external-smtp", "host": "SMTP.test ", "port": 2525, "username": "u",
                       "password": MASK, "extra": "dropped"}, stored)
    assert got == {"provider": "external-smtp", "host": "smtp.test", "port": 2525, "username": "u",
                   "password": "secret-1", "acceptSelfSignedCerts": False}
    assert clean_relay({"provider": "cloudron-smtp", "host": "ignored"}, stored) == {"provider": "cloudron-smtp"}
    noauth = clean_relay({"provider": "external-smtp-noauth", "host": "h.test", "username": "u", "password": "p"})
    assert "password" not in noauth and "username" not in noauth
    # a mask with nothing stored is not a password
    assert clean_relay({"provider": "external-smtp", "host": "h.test", "password": MASK})["password"] == ""


@pytest.mark.parametrize("body, field", [
    ({"provider": "smtp"}, "provider"),
    ({"provider": "external-smtp"}, "host"),
    ({"provider": "external-smtp", "host": "a\nb"}, "host"),
    ({"provider": "external-smtp", "host": "h.test", "port": 0}, "port"),
    ({"provider": "external-smtp", "host": "h.test", "port": True}, "port"),
    ({"provider": "external-smtp", "host": "h.test", "username": 5}, "username"),
    ({"provider": "external-smtp", "host": "h.test", "acceptSelfSignedCerts": "yes"}, "acceptSelfSignedCerts"),
])
def test_bad_relay_is_400_naming_the_field(body, field):
    from mail.settings import clean_relay
    with pytest.raises(BadRequest) as e:
        clean_relay(body)
    assert e.value.field == field


def test_found_records_are_judged_like_cloudron():
    from mail.status import _check
    host = "my.example.test"
    assert _check("mx", ["10 MY.example.test."], "10 my.example.test.", host) == ("10 MY.example.test.", True)
    assert _check("mx", ["20 other.test."], "10 my.example.test.", host)[1] is False
    assert _check("spf", ["other", "v=spf1 a:my.example.test ~all"], "", host) == (
        "v=spf1 a:my.example.test ~all", True)
    assert _check("spf", ["v=spf1 a:my.example.test.evil ~all"], "", host)[1] is False
    assert _check("dkim", ["v=DKIM1; t=s; p=ABC"], "v=DKIM1; t=s; p=ABC", host)[1] is True
    assert _check("dkim", ["v=DKIM1; t=s; p=XYZ"], "v=DKIM1; t=s; p=ABC", host)[1] is False
    assert _check("dkim", [], "", host) == (None, False)
    assert _check("dmarc", ["v=DMARC1; p=none"], "", host) == ("v=DMARC1; p=none", True)


def test_snapshot_holds_every_address_and_setting(db):
    from mail import sync
    from models import Domain, Setting, User
    from models.mail import ALIAS, LIST, MAILBOX, MailAddress, MailDomain
    for name in ("a.test", "b.test"):
        Domain.create(domain=name, zone_name=name, provider="noop", fallback_cert="-", fallback_key="-")
    MailDomain.create(domain="a.test", enabled=True, catch_all=["x@a.test"])
    user = User.create(id=f"uid-{uuid.uuid4()}", username="u", email="u@e.test")
    MailAddress.create(name="box", domain="a.test", type=MAILBOX, owner_id=user.id, owner_type="user", active=False)
    MailAddress.create(name="info", domain="b.test", type=ALIAS, alias_name="box", alias_domain="a.test")
    MailAddress.create(name="team", domain="a.test", type=LIST, members=["m@e.test"], members_only=True)
    MailAddress.create(name="off", domain="a.test", type=LIST, members=["m@e.test"], active=False)
    Setting.put("admin_domain", "a.test")
    Setting.put("mail_spam_acl", {"whitelist": ["ok@e.test"], "blacklist": ["*@spam.test"]})
    snap = sync.snapshot()
    assert snap["hostname"] == "my.a.test"
    assert snap["domains"] == [
        {"domain": "a.test", "enabled": True, "catchAll": ["x@a.test"], "mailFromValidation": True,
         "relay": {"provider": "cloudron-smtp"}, "banner": {"text": "", "html": ""}},
        {"domain": "b.test", "enabled": False, "catchAll": [], "mailFromValidation": True,
         "relay": {"provider": "cloudron-smtp"}, "banner": {"text": "", "html": ""}}]
    assert snap["mailboxes"] == [{"address": "box@a.test", "active": False}]
    assert snap["aliases"] == [{"address": "info@b.test", "target": "box@a.test"}]
    assert snap["lists"] == [{"address": "team@a.test", "members": ["m@e.test"], "membersOnly": True}]
    assert snap["maxEmailSize"] == 25 * 1024 * 1024
    assert snap["spamAcl"] == {"allowlist": ["ok@e.test"], "blocklist": ["*@spam.test"]}
    assert snap["authProgram"][1:3] == ["-m", "mail.checkpassword"]
    assert stat.S_IMODE(os.stat(snap["authProgram"][3]).st_mode) == 0o600


def test_a_domain_with_mail_addresses_or_mail_enabled_cannot_be_removed(db):
    import domains
    from core.errors import Conflict
    from eventlog import Actor
    from models import Domain
    from models.mail import LIST, MailAddress, MailDomain
    for name in ("used.test", "on.test", "free.test"):
        Domain.create(domain=name, zone_name=name, provider="noop", fallback_cert="-", fallback_key="-")
    MailAddress.create(name="team", domain="used.test", type=LIST, members=["a@b.test"])
    MailDomain.create(domain="on.test", enabled=True)
    MailDomain.create(domain="free.test", enabled=False, catch_all=["x@y.test"])
    with pytest.raises(Conflict, match="mailboxes"):
        domains.remove_domain(Actor(), "used.test")
    with pytest.raises(Conflict, match="Mail is enabled"):
        domains.remove_domain(Actor(), "on.test")
    domains.remove_domain(Actor(), "free.test")     # its mail settings go with it
    assert MailDomain.get_or_none(MailDomain.domain == "free.test") is None


def test_delivery_events_become_eventlog_entries_with_a_direction():
    from mail.server_settings import _entry
    local = {"ours.test"}
    got = _entry({"type": "delivered", "time": 0, "from": "a@else.test", "to": "me@ours.test", "queueId": "Q1",
                  "messageId": "m1@else.test", "detail": "delivered via dovecot"}, local)
    assert got == {"ts": "1970-01-01T00:00:00Z", "type": "delivered", "direction": "inbound",
                   "messageId": "m1@else.test", "mailFrom": "a@else.test", "rcptTo": "me@ours.test",
                   "details": {"queueId": "Q1", "detail": "delivered via dovecot"}}
    assert _entry({"type": "delivered", "time": 0, "from": "me@ours.test", "to": "x@else.test"}, local)[
        "direction"] == "outbound"
    assert _entry({"type": "received", "time": 0, "from": "me@ours.test", "to": None}, local)["direction"] == "outbound"
