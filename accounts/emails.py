"""Email addresses: the one check every route that accepts an address goes through (users, profile,
activation, fallback email, invites; mail reuses it).

Stricter than "has an @": an address Berth stores is later a login name, the target of invite and
reset mail and, with the mail server, a mailbox, so a malformed one (`a@@b.test`, `a@b.test.`,
`a b@c.test`) must be refused when it is sent (400 naming the field), not discovered when mail
bounces. The accepted form is the common dot-atom one (RFC 5322 without quoted local parts, comments
or address literals, which no client of Berth sends), with internationalised letters allowed on
both sides (RFC 6531) and a host name of at least two labels.
"""
from core.errors import BadRequest

MAX_LENGTH = 254      # RFC 5321: a forward path holds at most 256 octets including the <>
MAX_LOCAL_LENGTH = 64
MAX_LABEL_LENGTH = 63
# RFC 5322 atext besides letters and digits.
_LOCAL_SPECIALS = set("!#$%&'*+/=?^_`{|}~-")


def problem(address: object) -> str | None:
    """Why `address` is not an acceptable email address, or None when it is."""
    if address is None or address == "":
        return "is required"
    if not isinstance(address, str):
        return "must be a string"
    if len(address) > MAX_LENGTH:
        return f"must be at most {MAX_LENGTH} characters"
    if any(c.isspace() or not c.isprintable() for c in address):
        return "must not contain spaces or control characters"
    if address.count("@") != 1:
        return "must contain exactly one '@'"
    local, _, domain = address.partition("@")
    return _local_problem(local) or _domain_problem(domain)


def _local_problem(local: str) -> str | None:
    if not local:
        return "is missing the part before '@'"
    if len(local) > MAX_LOCAL_LENGTH:
        return f"the part before '@' must be at most {MAX_LOCAL_LENGTH} characters"
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return "the part before '@' must not start or end with '.' or contain '..'"
    if not all(c.isalnum() or c in _LOCAL_SPECIALS or c == "." for c in local):
        return "the part before '@' contains a character that is not allowed"
    return None


def _domain_problem(domain: str) -> str | None:
    if not domain:
        return "is missing the domain after '@'"
    if domain.endswith("."):
        return "the domain must not end with '.'"
    labels = domain.split(".")
    if len(labels) < 2:
        return "the domain must have at least two labels (like example.com)"
    for label in labels:
        if not label:
            return "the domain must not contain empty labels ('..' or a leading '.')"
        if len(label) > MAX_LABEL_LENGTH:
            return f"a domain label must be at most {MAX_LABEL_LENGTH} characters"
        if label.startswith("-") or label.endswith("-"):
            return "a domain label must not start or end with '-'"
        if not all(c.isalnum() or c == "-" for c in label):
            return "the domain may only contain letters, digits, '-' and '.'"
    if labels[-1].isdigit():
        return "the domain must end in a name, not a number"
    return None


def is_valid(address: object) -> bool:
    return problem(address) is None


def check(address: object, field: str = "email") -> str:
    """The address in its stored form (lower case), or raise BadRequest naming `field`.

    Nothing is trimmed: an address sent with spaces around it is refused like one with spaces
    inside, as Cloudron does, rather than silently becoming a different string."""
    reason = problem(address)
    if reason is not None:
        raise BadRequest(reason if reason in ("must be a string", "is required")
                         else f"is not a valid email address: {reason}", field)
    return address.lower()


def check_optional(address: object, field: str) -> str:
    """For fields where the empty string means "none" (fallbackEmail): "" or a valid address."""
    if address == "":
        return ""
    return check(address, field)
