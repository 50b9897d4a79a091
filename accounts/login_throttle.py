"""Login throttling: repeated failed logins per account and per source address get a 429.

Failures are kept in the database so every server process sees the same count.
"""
import time

from core.errors import TooManyRequests
from models import LoginFailure

WINDOW_SECS = 300
MAX_PER_USER = 5
MAX_PER_IP = 20


def subject(user_id: str | None, name: str) -> str:
    """The per-account bucket: the resolved user's id, so every way of naming one account (" bob",
    "BOB ", "bob@example.com") shares one count; the normalised name when no user matches."""
    return f"user:{user_id}" if user_id else f"name:{(name or '').strip().lower()}"


def _keys(account, ip):
    return [(account, MAX_PER_USER), (f"ip:{ip or '-'}", MAX_PER_IP)]


def check(account: str, ip: str | None) -> None:
    """Raise TooManyRequests (with Retry-After) if this account (a `subject`) or address is locked out."""
    now = time.time()
    for key, limit in _keys(account, ip):
        recent = (LoginFailure.select(LoginFailure.at)
                  .where((LoginFailure.key == key) & (LoginFailure.at > now - WINDOW_SECS))
                  .order_by(LoginFailure.at.desc()).limit(limit))
        times = [row.at for row in recent]
        if len(times) >= limit:
            raise TooManyRequests("Too many failed logins, try again later",
                                  retry_after=times[-1] + WINDOW_SECS - now)


def failed(account: str, ip: str | None) -> None:
    now = time.time()
    LoginFailure.insert_many([{"key": key, "at": now} for key, _ in _keys(account, ip)]).execute()
    LoginFailure.delete().where(LoginFailure.at < now - WINDOW_SECS).execute()


def succeeded(account: str) -> None:
    LoginFailure.delete().where(LoginFailure.key == account).execute()
