"""accounts.emails: the one email check of every route that accepts an address (pure, no database)."""
import pytest

from accounts import emails
from core.errors import BadRequest

VALID = [
    "julia@example.com",
    "Julia.Example@Example.COM",
    "a@b.co",
    "first.last+tag@sub.example.org",
    "o'brien@example.ie",
    "x_y-z@my-host.example",
    "user@xn--bcher-kva.example",
    "jürgen@bücher.de",
    "1234@example.com",
]

INVALID = {
    "a@@b.test": "exactly one '@'",
    "a@b@c.test": "exactly one '@'",
    "julia.example.com": "exactly one '@'",
    "julia@": "missing the domain",
    "@example.com": "missing the part before",
    "julia@example": "at least two labels",
    "julia@example.com.": "must not end with '.'",
    "julia @example.com": "spaces",
    " julia@example.com": "spaces",
    "julia@example.com ": "spaces",
    "julia@exa mple.com": "spaces",
    "julia\t@example.com": "spaces",
    "julia\n@example.com": "spaces",
    ".julia@example.com": "start or end with '.'",
    "julia.@example.com": "start or end with '.'",
    "ju..lia@example.com": "contain '..'",
    "julia@example..com": "empty labels",
    "julia@.example.com": "empty labels",
    "julia@-example.com": "start or end with '-'",
    "julia@exam_ple.com": "may only contain",
    "ju<lia>@example.com": "not allowed",
    "ju(lia)@example.com": "not allowed",
    '"julia"@example.com': "not allowed",
    "julia@[127.0.0.1]": "may only contain",
    "julia@1.2.3.4": "end in a name",
    "a" * 65 + "@example.com": "at most 64",
    "julia@" + "a" * 64 + ".com": "at most 63",
    "julia@" + "a." * 125 + "com": "at most 254",
}


@pytest.mark.parametrize("address", VALID)
def test_valid_addresses_are_accepted_and_lower_cased(address):
    assert emails.is_valid(address)
    assert emails.check(address) == address.lower()


@pytest.mark.parametrize("address, reason", INVALID.items())
def test_invalid_address_is_refused_naming_the_field_and_the_reason(address, reason):
    assert not emails.is_valid(address)
    with pytest.raises(BadRequest) as raised:
        emails.check(address, "fallbackEmail")
    message = raised.value.message
    assert message.startswith("fallbackEmail: is not a valid email address"), message
    assert reason in message, message


@pytest.mark.parametrize("value, message", [(None, "email: is required"), ("", "email: is required"),
                                            (42, "email: must be a string"),
                                            (["a@b.co"], "email: must be a string")])
def test_missing_or_not_a_string(value, message):
    with pytest.raises(BadRequest) as raised:
        emails.check(value)
    assert raised.value.message == message


def test_optional_field_takes_the_empty_string_as_none():
    assert emails.check_optional("", "fallbackEmail") == ""
    assert emails.check_optional("Backup@Example.com", "fallbackEmail") == "backup@example.com"
    with pytest.raises(BadRequest):
        emails.check_optional("a@@b.test", "fallbackEmail")
