"""The dummy password hash (logins of unknown names cost the same as known ones) is made on first
use, not when accounts is imported: every process importing accounts paid one argon2 hash."""
import subprocess
import sys


def test_importing_accounts_makes_no_hash_and_the_dummy_hash_is_argon2():
    code = ("import accounts.passwords as p; assert p._dummy_hash.cache_info().currsize == 0; "
            "h = p.DUMMY_HASH; assert h.startswith('$argon2id$') and h is p.DUMMY_HASH; "
            "assert not p.verify_password(h, 'anything')")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
