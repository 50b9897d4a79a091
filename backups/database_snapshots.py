"""Consistent copies of the platform database (for box backups), and putting one back.

- SQLite: the sqlite3 online backup API copies the live database into a file while the server
  keeps running (readers and writers are not stopped; the copy is one consistent read snapshot).
- PostgreSQL: `pg_dump --format=custom` (one consistent transaction snapshot), run with an
  argument list; the binary is found on PATH or under /usr/lib/postgresql/<version>/bin.

Restoring replaces the *content* of the platform tables inside one transaction of the live
database (the running server keeps its connections), leaving out what belongs to this process
and host rather than to the platform: the task queue and its runners, schedules and their
claims, failed-login counters and the schema version. A SQLite snapshot can be put back into
either backend (rows are read and converted field by field, so an older snapshot without a newer
column gets that column's default); a PostgreSQL dump only into PostgreSQL.

Scrubbing: `snapshot(..., scrub={table: fn})` rewrites rows of the copy before it leaves this
host (fn gets and returns {column: text value}); backups/snapshot_secrets.py says what and why.
The SQLite copy is changed in place with secure_delete on and then vacuumed, so no old value
stays in a free page; PostgreSQL is dumped as plain SQL (`platform.sql`) and its COPY rows are
rewritten on the way to the file. Older `platform.pgdump` (custom format) snapshots still restore.
"""
import glob
import io
import json
import os
import re
import shutil
import sqlite3
from collections.abc import Callable
from urllib.parse import unquote, urlparse

import peewee

from core import commands, config, files
from core.errors import DependencyFailed
from models import database, migrations
from models.db import BaseModel, is_postgres

SQLITE_FILE = "platform.sqlite"
PG_FILE = "platform.pgdump"      # custom format (snapshots made before scrubbing existed)
PG_SQL_FILE = "platform.sql"     # plain format: COPY blocks, rows scrubbed
INFO_FILE = "platform.json"
# Not the platform's state but this installation's machinery: never copied back.
EXCLUDED = {"tasks", "task_runners", "schedules", "schedule_runs", "schema_version", "login_failure"}
BATCH = 500

Scrub = dict[str, Callable[[dict], dict]]


class SnapshotError(DependencyFailed):
    """The database could not be copied or put back; the message says why."""


def _models():
    """table name -> model, for every model of Berth (all are imported by models.migrations)."""
    found = {}
    stack = list(BaseModel.__subclasses__())
    while stack:
        model = stack.pop()
        stack.extend(model.__subclasses__())
        found[model._meta.table_name] = model
    return found


def pg_binary(name: str) -> str:
    path = shutil.which(name)
    if path:
        return path
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if not found:
        raise SnapshotError(f"{name} not found (Debian package postgresql-client)")
    return found[-1]


def _pg_connection():
    """(URI without the password, environment with PGPASSWORD): a password on a command line
    would be visible to every local user in the process list."""
    url = urlparse(config.get().database_url)
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = unquote(url.password)
        netloc = url.netloc.rsplit("@", 1)
        url = url._replace(netloc=netloc[0].split(":", 1)[0] + "@" + netloc[1])
    return url.geturl().replace("postgres://", "postgresql://", 1), env


def _run(argv, what, env=None):
    try:
        return commands.run(argv, env=env, timeout=3600).stdout
    except (commands.CommandError, OSError) as e:
        raise SnapshotError(f"{what} failed: {e}") from None


def _sqlite_path():
    return config.get().database_url[len("sqlite:///"):]   # as models.db.open_database reads it


def snapshot(dest_dir: str, scrub: Scrub | None = None) -> dict:
    """Write a consistent copy of the platform database into dest_dir, its rows passed through
    `scrub`; returns its info dict ({dbType, file, size, schemaVersion, version, tables})."""
    os.makedirs(dest_dir, exist_ok=True)
    tables = sorted(t for t in _models() if t not in EXCLUDED)
    if is_postgres():
        target = os.path.join(dest_dir, PG_SQL_FILE)
        raw = target + ".raw"
        uri, env = _pg_connection()
        _run([pg_binary("pg_dump"), "--format=plain", "--no-owner", "--no-privileges", "--data-only",
              f"--file={raw}", f"--dbname={uri}"], "pg_dump", env)
        try:
            _scrub_copy_text(raw, target, scrub or {})
        finally:
            os.remove(raw)
        db_type = "postgresql"
    else:
        target = os.path.join(dest_dir, SQLITE_FILE)
        source = sqlite3.connect(_sqlite_path(), timeout=30)
        copy = sqlite3.connect(target)
        try:
            with copy:
                source.backup(copy)   # all pages in one step: one read transaction, consistent
            copy.execute("PRAGMA journal_mode=DELETE")  # a self-contained file, no -wal beside it
            if scrub:
                _scrub_sqlite(copy, scrub)
        finally:
            copy.close()
            source.close()
        db_type = "sqlite"
    info = {"dbType": db_type, "file": os.path.basename(target), "size": os.path.getsize(target),
            "schemaVersion": migrations.current_version(), "version": config.get().version,
            "tables": tables}
    files.write_atomic(os.path.join(dest_dir, INFO_FILE), json.dumps(info))
    return info


def _scrub_sqlite(copy, scrub):
    """Rewrite the scrubbed rows of the copy; secure_delete zeroes the pages the old values were
    on and VACUUM rebuilds the file, so the old values are nowhere in it."""
    copy.execute("PRAGMA secure_delete=ON")
    present = {r[0] for r in copy.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    with copy:
        for table, fn in scrub.items():
            if table not in present:
                continue
            cursor = copy.execute(f'SELECT rowid, * FROM "{table}"')
            columns = [d[0] for d in cursor.description][1:]
            for raw in cursor.fetchall():
                row = dict(zip(columns, raw[1:], strict=True))
                changed = {c: v for c, v in fn(dict(row)).items() if row.get(c) != v}
                if changed:
                    sets = ", ".join(f'"{c}" = ?' for c in changed)
                    copy.execute(f'UPDATE "{table}" SET {sets} WHERE rowid = ?', [*changed.values(), raw[0]])
    copy.execute("VACUUM")


# COPY text format: tab-separated fields, \N for NULL, backslash escapes for control characters.
_COPY_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{1,2}|[0-7]{1,3}|.)")
_COPY_CHARS = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def _copy_decode(field):
    if field == "\\N":
        return None

    def one(m):
        code = m.group(1)
        if code[0] == "x":
            return chr(int(code[1:], 16))
        if code[0].isdigit():
            return chr(int(code, 8))
        return _COPY_CHARS.get(code, code)
    return _COPY_ESCAPE.sub(one, field)


def _copy_encode(value):
    if value is None:
        return "\\N"
    return (str(value).replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
            .replace("\t", "\\t"))


def _copy_header(line):
    """(table, [columns]) of a `COPY schema.table (a, b) FROM stdin;` line."""
    head = line[5:].split(" FROM stdin", 1)[0]
    name, _, columns = head.partition(" ")
    return name.split(".")[-1].strip('"'), [c.strip().strip('"') for c in columns.strip("()").split(",")]


def _scrub_copy_text(src, dest, scrub):
    """Copy a plain pg_dump, rewriting the COPY rows of the tables in `scrub`."""
    with open(src, encoding="utf-8", newline="\n") as inp, open(dest, "w", encoding="utf-8", newline="") as out:
        fn, columns = None, []
        for line in inp:
            if fn is None:
                if line.startswith("COPY "):
                    table, columns = _copy_header(line)
                    fn = scrub.get(table)
                out.write(line)
                continue
            if line.rstrip("\n") == "\\.":
                fn = None
                out.write(line)
                continue
            fields = line.rstrip("\n").split("\t")
            row = dict(zip(columns, (_copy_decode(f) for f in fields), strict=True))
            for column, value in fn(dict(row)).items():
                if column in columns and row.get(column) != value:
                    fields[columns.index(column)] = _copy_encode(value)
            out.write("\t".join(fields) + "\n")


def read_info(snapshot_dir: str) -> dict:
    try:
        with open(os.path.join(snapshot_dir, INFO_FILE)) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise SnapshotError(f"the backup holds no platform database ({INFO_FILE}: {e})") from None


def restore(snapshot_dir: str, keep: Callable[[], None] | None = None) -> dict:
    """Replace the platform tables' content with the snapshot's, in one transaction. `keep` is an
    optional function run inside that transaction after the copy (to put back rows of this
    instance, e.g. its restore status). Returns {table: rows}."""
    info = read_info(snapshot_dir)
    if info.get("schemaVersion", 0) > migrations.current_version():
        raise SnapshotError(f"the backup's database schema ({info.get('schemaVersion')}) is newer than this "
                            f"Berth's ({migrations.current_version()}): update Berth first")
    models = _models()
    wanted = [m for m in peewee.sort_models(models.values()) if m._meta.table_name not in EXCLUDED]
    path = os.path.join(snapshot_dir, os.path.basename(str(info.get("file"))))
    with database.atomic():
        for model in reversed(wanted):
            model.delete().execute()
        if info["dbType"] == "sqlite":
            counts = _from_sqlite(path, wanted)
        elif info["dbType"] == "postgresql":
            if not is_postgres():
                raise SnapshotError("this backup's database is a PostgreSQL dump; it can only be restored "
                                    "into a Berth that uses PostgreSQL (BERTH_DATABASE_URL)")
            counts = _from_pg_dump(path, wanted)
        else:
            raise SnapshotError(f"unknown database type {info['dbType']!r} in the backup")
        if keep is not None:
            keep()
    return counts


def _from_sqlite(path, wanted):
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    counts = {}
    try:
        present = {r[0] for r in source.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        for model in wanted:
            table = model._meta.table_name
            if table not in present:
                continue
            cursor = source.execute(f'SELECT * FROM "{table}"')
            columns = [d[0] for d in cursor.description]
            by_column = {f.column_name: f for f in model._meta.sorted_fields}
            fields = [(i, by_column[c]) for i, c in enumerate(columns) if c in by_column]
            count = 0
            while True:
                raw = cursor.fetchmany(BATCH)
                if not raw:
                    break
                # Raw SQLite values -> Python (JSON text, 0/1 booleans, datetime text), then the
                # insert converts them for whichever backend is live.
                rows = [{f: f.python_value(r[i]) for i, f in fields} for r in raw]
                model.insert_many(rows).execute()
                count += len(rows)
            counts[table] = count
    finally:
        source.close()
    _reset_sequences(wanted)
    return counts


def _from_pg_dump(path, wanted):
    """A plain dump (platform.sql) is read as it is; a custom-format one (platform.pgdump, made
    before scrubbing existed) is turned into the same SQL text by pg_restore first."""
    if os.path.basename(path) == PG_SQL_FILE:
        with open(path, encoding="utf-8", newline="\n") as f:
            return _copy_in(f, wanted)
    text = _run([pg_binary("pg_restore"), "--data-only", "--no-owner", "--no-privileges", "-f", "-", path],
                "pg_restore")
    return _copy_in(io.StringIO(text, newline="\n"), wanted)


def _copy_in(lines, wanted):
    """The COPY blocks of our tables are fed to COPY FROM STDIN on this transaction's connection,
    so the whole restore commits or not at all."""
    tables = {m._meta.table_name: m for m in wanted}
    cursor = database.obj.connection().cursor()
    counts = {}
    lines = iter(lines)
    for line in lines:
        if not line.startswith("COPY "):
            continue
        table, listed = _copy_header(line)
        block = []
        for data in lines:
            if data.rstrip("\n") == "\\.":
                break
            block.append(data)
        if table not in tables:
            continue
        known = {f.column_name for f in tables[table]._meta.sorted_fields}
        unknown = [c for c in listed if c not in known]
        if unknown:
            raise SnapshotError(f"table {table} of the backup has columns this Berth does not know: "
                                f"{unknown}")
        columns = ", ".join(f'"{c}"' for c in listed)
        cursor.copy_expert(f'COPY "{table}" ({columns}) FROM STDIN', io.StringIO("".join(block)))
        counts[table] = len(block)
    _reset_sequences(wanted)
    return counts


def _reset_sequences(wanted):
    if not is_postgres():
        return   # SQLite continues after the highest rowid by itself
    for model in wanted:
        pk = model._meta.primary_key
        if isinstance(pk, peewee.AutoField):
            table, column = model._meta.table_name, pk.column_name
            database.execute_sql(
                f"SELECT setval(pg_get_serial_sequence('\"{table}\"', '{column}'), "
                f"COALESCE((SELECT MAX(\"{column}\") FROM \"{table}\"), 0) + 1, false)")
