"""domains.in_use and remove_domain on a throw-away SQLite database: a domain an app, alias or
redirect is on cannot be removed, whatever spelling the app row has and whether or not the apps
package was ever imported (the check queries the App model itself)."""
import uuid

import pytest

from core.errors import Conflict
from eventlog import Actor


def _domain(name):
    from models import Domain
    return Domain.create(domain=name, zone_name=name, provider="noop", fallback_cert="-", fallback_key="-")


def _app(domain, **fields):
    from models.apps import App
    return App.create(id=str(uuid.uuid4()), location="web", domain=domain, manifest={},
                      installation_state="installed", **fields)


def test_domain_of_an_app_alias_or_redirect_is_in_use(db):
    from domains import in_use
    for name in ("main.test", "alias.test", "redirect.test", "free.test"):
        _domain(name)
    app = _app("main.test", alternate_domains=[{"domain": "alias.test", "subdomain": "a"}],
               redirect_domains=[{"domain": "redirect.test", "subdomain": "r"}])
    for name in ("main.test", "alias.test", "REDIRECT.test."):
        assert in_use.reason(name) == f"Domain is used by app {app.id}"
    assert in_use.reason("free.test") is None


def test_row_stored_with_trailing_dot_and_case_still_protects_its_domain(db):
    """Rows written before names were stored normalised (`OTHER.test.`)."""
    import domains
    from models import Domain
    _domain("other.test")
    app = _app("OTHER.test.")
    with pytest.raises(Conflict, match=app.id):
        domains.remove_domain(Actor(), "other.test")
    assert Domain.get_or_none(Domain.domain == "other.test") is not None
    app.delete_instance()
    domains.remove_domain(Actor(), "Other.Test.")
    assert Domain.get_or_none(Domain.domain == "other.test") is None
