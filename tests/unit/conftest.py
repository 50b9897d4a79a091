"""Fixtures shared by the unit tests of every area."""
import pytest


@pytest.fixture
def db(tmp_path):
    """A throw-away SQLite database, migrated, with the configuration pointed at `tmp_path` as the
    data dir (so code that reads config.get() finds the same database); the data dir is yielded.
    An area's conftest or test module may override it (apps adds a domain, mail.checkpassword
    the files Dovecot hands over)."""
    from core import config
    from models import database, migrations, open_database
    previous = config._current
    config.use(config.load({"BERTH_DATA_DIR": str(tmp_path)}))
    open_database(config.get().database_url)
    migrations.migrate()
    yield tmp_path
    database.close()
    config.use(previous)
