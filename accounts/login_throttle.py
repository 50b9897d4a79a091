"""Login throttling: repeated failed logins per user and per source address get a 429.

Failures are kept in the database so every server process sees the same count.
"""
import time

from core.errors import TooManyRequests
from models import LoginFailure

WINDOW_SECS = 300
MAX_PER_USER = 5
MAX_PER_IP = 20


def _keys(username, ip):
    return [(f"user:{(username or '').lower()}", MAX_PER_USER), (f"ip:{ip or '-'}", MAX_PER_IP)]


def check(username, ip):
    """Raise TooManyRequests (with Retry-After) if this user or address is locked out."""
    now = time.time()
    for key, limit in _keys(username, ip):
        recent = (LoginFailure.select(LoginFailure.at)
                  .where((LoginFailure.key == key) & (LoginFailure.at > now - WINDOW_SECS))
                  .order_by(LoginFailure.at.desc()).limit(limit))
        times = [row.at for row in recent]
        if len(times) >= limit:
            raise TooManyRequests("Too many failed logins, try again later",
                                  retry_after=times[-1] + WINDOW_SECS - now)


def failed(username, ip):
    now = time.time()
    LoginFailure.insert_many([{"key": key, "at": now} for key, _ in _keys(username, ip)]).execute()
    LoginFailure.delete().where(LoginFailure.at < now - WINDOW_SECS).execute()


def succeeded(username):
    LoginFailure.delete().where(LoginFailure.key == f"user:{(username or '').lower()}").execute()
