"""The one database handle every model binds to, and how it is opened.

SQLite is the embedded default (WAL so readers never wait for the writer, a busy timeout so
concurrent writers queue instead of failing, foreign keys on); PostgreSQL is used when
BERTH_DATABASE_URL says postgresql://.
"""
import json
import os
from urllib.parse import urlparse

import peewee
from playhouse.db_url import connect

from core.times import iso, utcnow  # noqa: F401  (models re-export them)

database = peewee.DatabaseProxy()

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "busy_timeout": 10000,
    "foreign_keys": 1,
    "synchronous": "normal",
    "cache_size": -2000,  # KiB per connection; every server thread holds one
}


class _SqliteDatabase(peewee.SqliteDatabase):
    """Every transaction (atomic()) begins IMMEDIATE, taking the write lock at BEGIN and waiting
    for it under busy_timeout. A deferred BEGIN that reads first pins a snapshot; if another
    process commits before the first write, SQLite refuses the upgrade at once with "database is
    locked" (busy_timeout does not apply), as bench/load.py found on PUT /groups/{id}/members."""

    def begin(self, lock_type=None):
        super().begin(lock_type or "IMMEDIATE")


def open_database(url):
    """Open `url` and bind the proxy to it. Returns the concrete database."""
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        path = url[len("sqlite:///"):]
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        db = _SqliteDatabase(path, pragmas=SQLITE_PRAGMAS, timeout=10)
    else:
        db = connect(url.replace("postgres://", "postgresql://", 1))
    database.initialize(db)
    return db


def is_postgres():
    return isinstance(database.obj, peewee.PostgresqlDatabase)


class JSONField(peewee.TextField):
    """JSON stored as text, so the same column works on SQLite and PostgreSQL."""

    def db_value(self, value):
        return None if value is None else json.dumps(value, separators=(",", ":"))

    def python_value(self, value):
        return None if value is None else json.loads(value)


class BaseModel(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False

    @classmethod
    def get_or_raise(cls, error, *where):
        """The one row matching `where`, or raise `error` (an ApiError instance, usually NotFound):
        the get-or-404 of every area."""
        row = cls.get_or_none(*where)
        if row is None:
            raise error
        return row
