"""domains.hostnames: the one spelling of names (finding 13) and the DNS-label rule."""
import pytest

from core.errors import BadRequest
from domains import hostnames
from models import Domain


@pytest.mark.parametrize("raw, clean", [("Example.TEST.", "example.test"), ("  a.test  ", "a.test"),
                                        ("a.test..", "a.test"), (None, ""), ("", "")])
def test_normalise(raw, clean):
    assert hostnames.normalise(raw) == clean


@pytest.mark.parametrize("raw, clean", [("Web", "web"), ("", ""), (None, ""), (" a-1 ", "a-1"), ("x" * 63, "x" * 63)])
def test_good_labels(raw, clean):
    assert hostnames.check_label(raw) == clean


@pytest.mark.parametrize("raw", ["x y;} include /etc", "a.b", "-a", "a-", "a_b", "x" * 64, "*", "é", "a\nb", 5])
def test_bad_labels_name_the_field(raw):
    with pytest.raises(BadRequest, match="^alternateDomains.0.subdomain: must be"):
        hostnames.check_label(raw, "alternateDomains.0.subdomain")


def test_fqdn_plain_and_hyphenated():
    plain = Domain(domain="example.test", config={})
    hyphenated = Domain(domain="example.test", config={"hyphenatedSubdomains": True})
    assert hostnames.fqdn("", plain) == "example.test"
    assert hostnames.fqdn("Web", plain) == "web.example.test"
    assert hostnames.fqdn("web", hyphenated) == "web-example.test"
