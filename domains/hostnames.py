"""Host names: the one way domain and host names are normalised, checked and put together.

Names are stored and compared normalised (lower case, no surrounding blanks, no trailing dot), so
`OTHER.test.` and `other.test` are one domain everywhere: in the in-use check, in the unique index
of apps and in nginx. A location or alias subdomain is one DNS label, as the API's pattern says;
nginx gets names only through the reverse proxy's own render-time check as well.
"""
import contextlib
import contextvars
import re
from collections.abc import Iterator

from core.errors import BadRequest, NotFound
from models import Domain

# One DNS label, or "" (the domain itself): `location` and the `subdomain` of aliases and redirects.
LABEL = re.compile(r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)?")


def normalise(name: str | None) -> str:
    """How a domain or host name is stored and compared."""
    return (name or "").strip().lower().rstrip(".")


def check_label(value: str | None, field: str = "location") -> str:
    """`value` as a normalised DNS label ("" allowed), or BadRequest naming `field`. fullmatch, not
    `$`: a trailing newline must not pass."""
    if value is not None and not isinstance(value, str):
        raise BadRequest("must be a string", field)
    label = (value or "").strip().lower()
    if not LABEL.fullmatch(label):
        raise BadRequest("must be a DNS label: letters, digits and inner hyphens, at most 63, or empty", field)
    return label


def fqdn(location: str, domain: "str | Domain") -> str:
    """The hostname of an app at `location` on `domain` ("" = the domain itself), honouring the
    domain's hyphenatedSubdomains setting (`<location>-<domain>`). NotFound for an unknown domain."""
    if isinstance(domain, Domain):
        dom = domain
    else:
        dom = Domain.get_or_raise(NotFound(f"No such domain: {domain}"), Domain.domain == normalise(domain))
    if not location:
        return dom.domain
    joiner = "-" if (dom.config or {}).get("hyphenatedSubdomains") else "."
    return f"{location.lower()}{joiner}{dom.domain}"


_domains: contextvars.ContextVar[list | None] = contextvars.ContextVar("domains", default=None)


@contextlib.contextmanager
def domains_read_once() -> Iterator[None]:
    """Within the block, domain_for_host reads the domains table once: a check over a thousand
    names (the renewal schedule) would otherwise spend most of its time building the same query."""
    token = _domains.set(list(Domain.select()))
    try:
        yield
    finally:
        _domains.reset(token)


def domain_for_host(hostname: str) -> Domain | None:
    """The Domain a hostname belongs to (the longest matching one), or None."""
    host = normalise(hostname)
    if host.startswith("*."):
        host = host[2:]
    best = None
    cached = _domains.get()
    for dom in cached if cached is not None else Domain.select():
        d = dom.domain
        hyphenated = (dom.config or {}).get("hyphenatedSubdomains")
        if host == d or host.endswith("." + d) or (hyphenated and host.endswith("-" + d)):
            if best is None or len(d) > len(best.domain):
                best = dom
    return best
