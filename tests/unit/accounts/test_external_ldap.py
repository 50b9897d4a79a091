"""External LDAP rules that need no directory: config validation, DN comparison, and the login
check refusing what must never reach a bind."""
import pytest

from accounts import external_ldap
from core.errors import BadRequest
from core.masking import MASK

GOOD = {"provider": "other", "url": "ldap://127.0.0.1:389", "baseDn": "ou=people,dc=x", "filter": "(objectClass=*)",
        "bindDn": "cn=reader,dc=x", "bindPassword": "pw"}


def test_noop_keeps_nothing():
    assert external_ldap.validate({"provider": "noop", "url": "ldap://x"}, {}) == ({"provider": "noop"}, "")


@pytest.mark.parametrize("change, field", [
    ({"url": ""}, "url"), ({"baseDn": None}, "baseDn"), ({"filter": " "}, "filter"),
    ({"url": "http://ldap.example"}, "url"), ({"filter": "objectClass=*"}, "filter"),
    ({"syncGroups": True}, "groupBaseDn"),
    ({"bindPassword": ""}, "bindPassword"),   # a DN without password is an anonymous bind
])
def test_invalid_configs_name_the_field(change, field):
    with pytest.raises(BadRequest) as caught:
        external_ldap.validate(dict(GOOD, **change), {})
    assert caught.value.field == field


def test_defaults_and_password_in_clear():
    cfg, password = external_ldap.validate(GOOD, {})
    assert cfg["usernameField"] == "uid" and cfg["groupnameField"] == "cn" and password == "pw"
    assert "bindPassword" not in cfg


def test_mask_without_a_stored_config_is_no_password():
    with pytest.raises(BadRequest) as caught:
        external_ldap.validate(dict(GOOD, bindPassword=MASK), {"provider": "noop"})
    assert caught.value.field == "bindPassword"


def test_anonymous_bind_needs_no_password():
    cfg, password = external_ldap.validate(dict(GOOD, bindDn="", bindPassword=""), {})
    assert cfg["bindDn"] == "" and password == ""


def test_dns_compare_like_the_directory():
    assert external_ldap.normalise_dn("UID=Alice, OU=People,dc=Example") == "uid=alice,ou=people,dc=example"


def test_directory_user_with_empty_password_is_refused_without_a_bind(db):
    from models import User
    user = User(id="u1", username="alice", email="a@x.test", source="ldap")
    assert external_ldap.check_password(user, None, "") is False
    assert external_ldap.check_password(user, None, "anything") is False   # directory off (noop)
