"""Password hashing (argon2id) and the password policy."""
import functools

import argon2

from core.errors import BadRequest

_hasher = argon2.PasswordHasher()  # argon2id, 64 MiB, t=3: the library's RFC 9106 low-memory profile

MIN_LENGTH = 8
MAX_LENGTH = 256


def check_policy(password: object, field: str = "password", username: str | None = None,
                 email: str | None = None) -> None:
    """Raise BadRequest naming `field` when the password is not acceptable."""
    if not isinstance(password, str):
        raise BadRequest("must be a string", field)
    if len(password) < MIN_LENGTH:
        raise BadRequest(f"must be at least {MIN_LENGTH} characters", field)
    if len(password) > MAX_LENGTH:
        raise BadRequest(f"must be at most {MAX_LENGTH} characters", field)
    if not password.strip():
        raise BadRequest("must not be only white space", field)
    if len(set(password)) < 3:
        raise BadRequest("must use at least 3 different characters", field)
    lowered = password.lower()
    if username and lowered == username.lower():
        raise BadRequest("must not be the username", field)
    if email and lowered == email.lower():
        raise BadRequest("must not be the email address", field)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str | None) -> bool:
    if not password_hash or password is None:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash("berth-no-such-user")


def __getattr__(name: str) -> str:
    """DUMMY_HASH: a hash to verify against when the user does not exist, so a login for an
    unknown name costs the same time as one for a known name (no user enumeration by timing).
    Made on first use, not at import: one argon2 hash is ~0.1 s of CPU, and every process that
    imports accounts paid it (each mail login's checkpassword program, each CLI call)."""
    if name == "DUMMY_HASH":
        return _dummy_hash()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
