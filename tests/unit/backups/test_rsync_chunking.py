"""The rules of rsync chunking (backups/formats/chunking.py): where FastCDC cuts, what a chunk
reference from an index may hold, how chunks are named, and the JSON lines both index and
checksum list are written with."""
import hashlib
import os
import random
import tempfile

import pytest
from blake3 import blake3

from backups.formats import chunking, jsonl
from backups.formats.checksums import BackupRefused
from backups.formats.encryption import Keyring

NAME = "ab" * 32
SHA = "cd" * 32


def _cuts(data):
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.flush()
        return [bytes(c) for c in chunking.cut(f.fileno(), len(data))]


def _data(n, seed=1):
    return random.Random(seed).randbytes(n)


def test_chunks_are_within_limits_and_add_up_to_the_file():
    data = _data(9 << 20)
    chunks = _cuts(data)
    assert b"".join(chunks) == data
    assert all(chunking.MIN <= len(c) <= chunking.MAX for c in chunks[:-1])
    assert 0 < len(chunks[-1]) <= chunking.MAX
    assert 3 <= len(chunks) <= 36


def test_an_append_changes_only_the_last_chunks():
    data = _data(12 << 20)
    before, after = _cuts(data), _cuts(data + _data(1 << 20, seed=2))
    new = set(after) - set(before)
    assert sum(len(c) for c in new) <= (1 << 20) + 2 * chunking.MAX
    assert after[:len(before) - 1] == before[:-1]


def test_an_edit_in_the_middle_changes_one_or_two_chunks():
    data = bytearray(_data(12 << 20))
    before = _cuts(bytes(data))
    data[6 << 20:(6 << 20) + 100] = b"x" * 100
    after = _cuts(bytes(data))
    assert len(set(after) - set(before)) <= 2


def test_cut_stops_at_the_size_the_scan_saw():
    data = _data(6 << 20)
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.flush()
        assert b"".join(bytes(c) for c in chunking.cut(f.fileno(), 5 << 20)) == data[:5 << 20]


def test_names_are_blake3_or_keyed_blake3_with_a_key_from_the_password():
    data = b"some chunk of app data"
    assert chunking.name_of(data, None) == blake3(data).hexdigest()
    k1 = Keyring("pw")
    key = chunking.chunk_key(k1)
    named = chunking.name_of(data, key)
    assert named not in (blake3(data).hexdigest(), hashlib.sha256(data).hexdigest()) and len(named) == 64
    assert named == blake3(data, key=key).hexdigest()
    # Same password and salt (carried over between backups): same name; another salt: another.
    k2 = Keyring("pw")
    k2.salt = k1.salt
    assert chunking.name_of(data, chunking.chunk_key(k2)) == named
    assert chunking.name_of(data, chunking.chunk_key(Keyring("pw"))) != named
    assert chunking.chunk_key(None) is None


def test_chunk_path_is_made_from_a_hash_only():
    assert chunking.chunk_path(NAME) == f"chunks/ab/{NAME[2:]}"
    for bad in ("../../etc/passwd", "files/x", NAME.upper(), NAME[:-1], NAME + "0", "", None, 5,
                "/" + NAME[1:], NAME[:62] + "/.", NAME[:63] + "\n", NAME + "\n"):
        with pytest.raises(BackupRefused):
            chunking.chunk_path(bad)


def test_chunk_references_from_an_index_are_checked_as_hostile_input():
    ok = [[NAME, 100, 100, SHA], [SHA, 50, 130, NAME]]
    assert chunking.check_refs(ok, 150) == ok
    assert chunking.check_refs([], 0) == []
    bad = [
        ([["../../x", 100, 100, SHA]], 100),               # a path for a name
        ([[NAME, 100, 100, "../x"]], 100),                  # stored sha not a hash
        ([[NAME, 100, 100, SHA]], 101),                     # sizes do not add up
        ([[NAME, 0, 100, SHA]], 0),                         # empty chunk
        ([[NAME, chunking.MAX + 1, chunking.MAX + 1, SHA]], chunking.MAX + 1),
        ([[NAME, 100, chunking.MAX_STORED + 1, SHA]], 100),
        ([[NAME, True, 100, SHA]], 1),                      # a bool is no size
        ([[NAME, 100.0, 100, SHA]], 100),
        ([[NAME, 100, 100]], 100),                          # too short
        ([{"name": NAME}], 100),
        ({"c": []}, 0),
        ([[NAME, 100, 100, SHA]], "100"),
        ([[NAME, 100, 100, SHA]], -1),
    ]
    for refs, size in bad:
        with pytest.raises(BackupRefused):
            chunking.check_refs(refs, size)


def test_json_lines_fall_back_for_names_that_are_not_utf8():
    odd = os.fsdecode(b"not-utf8-\xff\xfe.bin")
    for value in ({"p": odd, "s": 3}, {"p": "ünïcødé ☃", "mt": 2**63 - 1}, {"big": 2**70}, ["a", 1, "b"]):
        line = jsonl.dumps(value)
        assert isinstance(line, bytes) and b"\n" not in line
        assert jsonl.loads(line) == value
    with pytest.raises(ValueError):
        jsonl.loads(b"{not json")
