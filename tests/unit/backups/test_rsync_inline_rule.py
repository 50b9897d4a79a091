"""When an incremental rsync backup reads a changed small file on the scan thread instead of in
the pool (backups/formats/rsync.py, _Inline): only small files, only while few of the files
scanned so far changed, and only while doing so stays cheap (a slow storage goes to the pool)."""
from backups.formats.rsync import _Inline


def test_a_small_file_among_many_unchanged_ones_is_read_on_the_scan_thread():
    rule = _Inline()
    assert not rule.wanted(1000, scanned=3)       # too early to tell how much changed
    assert rule.wanted(1000, scanned=100)
    assert not rule.wanted(_Inline.MAX_SIZE + 1, scanned=100)


def test_many_changed_files_go_to_the_pool():
    rule = _Inline()
    scanned = 0
    for _ in range(200):                          # every file scanned has changed: a first backup
        scanned += 1
        if rule.wanted(1000, scanned):
            rule.took(0.0001)
        else:
            rule.read += 1                        # what the scan does for a file given to the pool
    assert rule.count == 0 and rule.read == 200


def test_a_slow_storage_sends_the_rest_to_the_pool():
    rule = _Inline()
    for _ in range(8):
        rule.took(_Inline.SLOW * 3)
    assert not rule.wanted(1000, scanned=10_000)
    fast = _Inline()
    for _ in range(8):
        fast.took(_Inline.SLOW / 10)
    assert fast.wanted(1000, scanned=10_000)
