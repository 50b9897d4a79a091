"""SQLite write transactions under concurrent writers (found by bench/load.py: PUT
/groups/{id}/members answered 500 "database is locked" with 5 clients on 2 workers).

A transaction that reads before it writes must not fail when another connection commits in
between: with a deferred BEGIN, its read snapshot goes stale and SQLite refuses the upgrade to a
write at once (SQLITE_BUSY_SNAPSHOT), without waiting for busy_timeout. Berth's transactions take
the write lock at BEGIN, so the other writer waits for them instead."""
import sqlite3
import threading


def test_read_then_write_transaction_survives_a_concurrent_commit_instead_of_database_is_locked(tmp_path):
    from models import database, open_database
    path = tmp_path / "berth.db"
    db = open_database(f"sqlite:///{path}")
    try:
        db.execute_sql("CREATE TABLE t (x INTEGER)")
        # Another worker or task process, writing while the transaction below is open.
        other = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        writer = threading.Thread(target=lambda: other.execute("INSERT INTO t VALUES (2)"))
        with db.atomic():
            db.execute_sql("SELECT count(*) FROM t").fetchone()  # the read that pins a snapshot
            writer.start()
            writer.join(0.5)  # a deferred BEGIN lets it commit now; an immediate one makes it wait
            db.execute_sql("INSERT INTO t VALUES (1)")  # was: OperationalError: database is locked
        writer.join(10)
        assert not writer.is_alive()
        assert sorted(x for (x,) in db.execute_sql("SELECT x FROM t")) == [1, 2]
        other.close()
    finally:
        database.close()
