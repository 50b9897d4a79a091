"""Scrubbing the platform snapshot (backups.snapshot_secrets rules applied by
backups.database_snapshots) on both snapshot forms: a SQLite copy and a plain pg_dump."""
import json
import sqlite3

from backups import database_snapshots, snapshot_secrets

SECRET = "s3cr3t/Access+Key"
KEY_PEM = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n"
CONFIG = {"provider": "s3", "bucket": "b", "accessKeyId": "AK", "secretAccessKey": SECRET, "key": "pass phrase",
          "retentionSecs": 3600, "note": "tab\there \\ backslash"}


def _sqlite_copy(path):
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE setting (name TEXT PRIMARY KEY, value TEXT)")
    db.execute("CREATE TABLE domain (domain TEXT PRIMARY KEY, fallback_cert TEXT, fallback_key TEXT)")
    db.execute("INSERT INTO setting VALUES ('backup_config', ?), ('cloudron_name', '\"Berth\"')",
               [json.dumps(CONFIG)])
    db.execute("INSERT INTO domain VALUES ('a.test', 'CERT', ?)", [KEY_PEM])
    db.commit()
    db.execute("PRAGMA journal_mode=DELETE")
    return db


def test_sqlite_copy_keeps_no_secret_anywhere_in_the_file(tmp_path):
    path = str(tmp_path / "platform.sqlite")
    db = _sqlite_copy(path)
    try:
        database_snapshots._scrub_sqlite(db, snapshot_secrets.scrubbers(encrypted=False))
        (value,) = db.execute("SELECT value FROM setting WHERE name = 'backup_config'").fetchone()
        assert json.loads(value) == {k: v for k, v in CONFIG.items() if k not in ("key", "secretAccessKey")}
        assert db.execute("SELECT value FROM setting WHERE name = 'cloudron_name'").fetchone() == ('"Berth"',)
        assert db.execute("SELECT fallback_cert, fallback_key FROM domain").fetchall() == [("CERT", "")]
    finally:
        db.close()
    with open(path, "rb") as f:
        raw = f.read()
    # Not in a free page either: the old values are gone from the bytes of the file.
    assert SECRET.encode() not in raw and b"pass phrase" not in raw and b"PRIVATE KEY" not in raw


def test_encrypted_snapshot_keeps_certificate_keys_but_never_storage_secrets(tmp_path):
    db = _sqlite_copy(str(tmp_path / "platform.sqlite"))
    try:
        database_snapshots._scrub_sqlite(db, snapshot_secrets.scrubbers(encrypted=True))
        assert db.execute("SELECT fallback_key FROM domain").fetchone() == (KEY_PEM,)
        (value,) = db.execute("SELECT value FROM setting WHERE name = 'backup_config'").fetchone()
        assert "secretAccessKey" not in json.loads(value) and "key" not in json.loads(value)
    finally:
        db.close()


def test_plain_pg_dump_rows_are_rewritten_and_the_rest_kept(tmp_path):
    enc = database_snapshots._copy_encode
    dump = (
        "SET client_encoding = 'UTF8';\n"
        "COPY public.setting (name, value) FROM stdin;\n"
        f"backup_config\t{enc(json.dumps(CONFIG))}\n"
        "cloudron_name\t\"Berth\"\n"
        "\\.\n"
        "\n"
        'COPY public."user" (id, password_hash) FROM stdin;\n'
        "u1\t$argon2id$v=19$m=65536\n"
        "\\.\n"
        "COPY public.domain (domain, fallback_cert, fallback_key, fallback_generated) FROM stdin;\n"
        f"a.test\t{enc('CERT')}\t{enc(KEY_PEM)}\tt\n"
        "b.test\tCERT\t\\N\tf\n"
        "\\.\n"
    )
    raw, out = tmp_path / "dump.raw", tmp_path / "platform.sql"
    raw.write_text(dump)
    database_snapshots._scrub_copy_text(str(raw), str(out), snapshot_secrets.scrubbers(encrypted=False))
    text = out.read_text()
    assert SECRET not in text and "pass phrase" not in text and "PRIVATE KEY" not in text
    lines = text.splitlines()
    config_line = next(line for line in lines if line.startswith("backup_config\t"))
    stored = json.loads(database_snapshots._copy_decode(config_line.split("\t")[1]))
    assert stored == {k: v for k, v in CONFIG.items() if k not in ("key", "secretAccessKey")}
    assert "a.test\tCERT\t\tt" in lines and "b.test\tCERT\t\tf" in lines
    # Everything else is as pg_dump wrote it.
    assert [line for line in lines if not line.startswith(("backup_config", "a.test", "b.test"))] == [
        line for line in dump.splitlines() if not line.startswith(("backup_config", "a.test", "b.test"))]


def test_copy_text_escapes_round_trip():
    for value in ("plain", "tab\tnew\nline\rcr \\ back", "", "\u00fcnicode"):
        assert database_snapshots._copy_decode(database_snapshots._copy_encode(value)) == value
    assert database_snapshots._copy_decode("\\N") is None and database_snapshots._copy_encode(None) == "\\N"
    assert database_snapshots._copy_decode("a\\101\\x42\\b") == "aAB\b"
