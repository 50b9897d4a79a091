"""Backup encryption as pure functions: key derivation, sealed chunks, hidden names, the checksum
list's MAC key. No storage, no files."""
import io
import os

import pytest

from backup_storage import StorageError
from backups.formats.encryption import CHUNK, HEADER, TAG, Decrypter, Encrypter, Keyring, WrongKey
from backups.formats.rsync_index import object_name

# One keyring per password for the whole module: scrypt is deliberately slow (~0.1 s).
RIGHT, WRONG = Keyring("correct horse"), Keyring("wrong horse")


def seal(plain, keyring=RIGHT):
    out = io.BytesIO()
    enc = Encrypter(out, keyring)
    for i in range(0, len(plain), 300_000):   # written in pieces that do not line up with chunks
        enc.write(plain[i:i + 300_000])
    enc.close()
    return out.getvalue()


def open_sealed(sealed, keyring=RIGHT, piece=123_457):
    dec = Decrypter(keyring, "test object")
    parts = []
    for i in range(0, len(sealed), piece):
        parts.extend(dec.feed(sealed[i:i + piece]))
    parts.append(dec.finish())
    return b"".join(parts)


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 5])
def test_sealed_object_round_trip(size):
    plain = os.urandom(size)
    sealed = seal(plain)
    chunks = max(1, -(-size // CHUNK))
    assert len(sealed) == HEADER.size + size + chunks * TAG
    assert open_sealed(sealed) == plain
    assert open_sealed(sealed, piece=1 << 22) == plain


def test_wrong_key_is_told_apart_from_damage():
    sealed = seal(b"secret data")
    with pytest.raises(WrongKey, match="wrong encryption key"):
        open_sealed(sealed, WRONG)
    damaged = bytearray(sealed)
    damaged[-3] ^= 1
    with pytest.raises(StorageError, match="failed authentication") as e:
        open_sealed(bytes(damaged))
    assert not isinstance(e.value, WrongKey)


def test_truncated_reordered_or_extended_streams_fail():
    plain = os.urandom(2 * CHUNK + 10)
    sealed = seal(plain)
    one = CHUNK + TAG
    body = sealed[HEADER.size:]
    with pytest.raises(StorageError):   # the last chunk dropped: the one before is not final
        open_sealed(sealed[:HEADER.size + 2 * one])
    swapped = sealed[:HEADER.size] + body[one:2 * one] + body[:one] + body[2 * one:]
    with pytest.raises(StorageError, match="failed authentication"):
        open_sealed(swapped)
    with pytest.raises(StorageError):
        open_sealed(sealed + body[-20:])
    with pytest.raises(StorageError, match="truncated"):
        open_sealed(sealed[:HEADER.size - 1])


def test_same_plaintext_seals_differently_each_time():
    assert seal(b"x" * 100) != seal(b"x" * 100)   # per-object seed


def test_key_derivation_depends_on_password_and_salt():
    salt, other = b"s" * 16, b"t" * 16
    again = Keyring("correct horse")
    assert RIGHT.keys(salt) == again.keys(salt)
    assert RIGHT.keys(salt) != RIGHT.keys(other)
    assert RIGHT.keys(salt) != WRONG.keys(salt)
    enc, mac = RIGHT.keys(salt)
    assert len(enc) == len(mac) == 32 and enc != mac
    assert RIGHT.check_value(salt) == again.check_value(salt) != WRONG.check_value(salt)
    assert Keyring(b"correct horse").keys(salt) == RIGHT.keys(salt)   # str and bytes alike


def test_header_with_absurd_scrypt_parameters_is_refused_without_deriving():
    header = bytearray(RIGHT.header())
    header[10] = 40   # log2 N: 2^40 would need terabytes
    with pytest.raises(StorageError, match="not an encrypted Berth backup object"):
        RIGHT.open_header(bytes(header), "x")


def test_list_mac_key_round_trip_and_wrong_key():
    fields = RIGHT.kdf_fields()
    assert set(fields) == {"salt", "n", "r", "p", "check"}
    reader = Keyring("correct horse")   # another process: only the password is shared
    assert reader.list_mac_key(fields, "b") == RIGHT.list_mac_key(fields, "b")
    assert reader.list_mac_key(fields, "b") not in RIGHT.keys(RIGHT.salt)   # its own key, derived
    with pytest.raises(WrongKey, match="wrong encryption key"):
        WRONG.list_mac_key(fields, "b")
    for bad in ({**fields, "n": 40}, {**fields, "salt": "zz"}, {k: v for k, v in fields.items() if k != "check"},
                {**fields, "check": ""}):
        with pytest.raises(StorageError):
            RIGHT.list_mac_key(bad, "b")


def test_encrypted_object_names_hide_the_path():
    key = RIGHT.name_key()
    name = object_name("docs/secret plan.txt", key)
    assert name.startswith("files/") and "secret" not in name and "docs" not in name
    assert name == object_name("docs/secret plan.txt", key)   # stable within a backup
    assert name != object_name("docs/secret plan.txt", Keyring("correct horse").name_key())   # new salt
    assert name != object_name("docs/secret plan.tx", key)


def test_plain_object_names_keep_the_path_unless_unsafe():
    assert object_name("docs/readme.txt", None) == "files/docs/readme.txt"
    for odd in ("new\nline", "x" * 901, "bad-\udcff-utf8"):
        assert object_name(odd, None).startswith("files-x/")
