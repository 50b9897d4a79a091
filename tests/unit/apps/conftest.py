"""A throw-away SQLite database and data dir per test, with one domain, for the app rules that read
rows (locations in use, ports taken, who sees what)."""
import uuid

import pytest

DOMAIN = "example.test"


@pytest.fixture
def db(tmp_path):
    from core import config
    from models import Domain, database, migrations, open_database
    previous = config._current
    config.use(config.load({"BERTH_DATA_DIR": str(tmp_path), "BERTH_PROXY_LISTEN": "127.0.0.1"}))
    open_database(config.get().database_url)
    migrations.migrate()
    Domain.create(domain=DOMAIN, zone_name=DOMAIN, provider="noop", fallback_cert="-", fallback_key="-")
    yield
    database.close()
    config.use(previous)


@pytest.fixture
def make_app(db):
    """Insert an app row directly (no task, no container): what the rules under test read."""
    from models.apps import App

    def make(location, domain=DOMAIN, **fields):
        fields.setdefault("manifest", {"id": "io.test", "httpPort": 8000})
        fields.setdefault("installation_state", "installed")
        return App.create(id=str(uuid.uuid4()), location=location, domain=domain, **fields)
    return make
