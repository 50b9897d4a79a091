"""HTTP-01 answers: /.well-known/acme-challenge/<token> on the HTTP port of every name.

The pending answers live as files under <data dir>/acme/challenges/ (file name = token, content =
key authorization) and are rendered into nginx.conf as a `map`, so nginx answers them from its
configuration: its workers (nobody) never read the data dir, which stays 0700. Publishing one is
a configuration change like any other, checked with `nginx -t` before the reload.
"""
import contextlib
import os
import re

from core import data_paths, files

VARIABLE = "$berth_acme_answer"
PREFIX = "/.well-known/acme-challenge/"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")          # base64url, as RFC 8555 §8.3 says
_KEY_AUTH = re.compile(r"^[A-Za-z0-9_-]{1,256}\.[A-Za-z0-9_-]{1,256}$")


def folder(data_dir: str | None = None) -> str:
    return data_paths.acme_challenges(data_dir)


def _check(token: str, key_authorization: str | None = None) -> None:
    # Both end up inside nginx.conf: anything but base64url could break out of the string.
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        raise ValueError(f"unusable ACME token {token!r}")
    if key_authorization is not None and (not isinstance(key_authorization, str)
                                          or not _KEY_AUTH.fullmatch(key_authorization)
                                          or not key_authorization.startswith(token + ".")):
        raise ValueError("unusable ACME key authorization")


def put(data_dir: str, token: str, key_authorization: str) -> None:
    _check(token, key_authorization)
    os.makedirs(folder(data_dir), mode=0o700, exist_ok=True)
    files.write_atomic(os.path.join(folder(data_dir), token), key_authorization, 0o600)


def remove(data_dir: str, token: str) -> None:
    _check(token)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(folder(data_dir), token))


def answers(data_dir: str) -> dict[str, str]:
    """{token: key authorization} of the pending challenges (malformed files are skipped)."""
    found = {}
    with contextlib.suppress(FileNotFoundError):
        for token in sorted(os.listdir(folder(data_dir))):
            text = (files.read_text(os.path.join(folder(data_dir), token)) or "").strip()
            with contextlib.suppress(ValueError):
                _check(token, text)
                found[token] = text
    return found


def render_map(data_dir: str) -> list[str]:
    """The `map` of nginx.conf's http block: the answer for a challenge URI, "" for any other."""
    lines = [f"map $uri {VARIABLE} {{", '    default "";']
    lines += [f'    "{PREFIX}{token}" "{answer}";' for token, answer in answers(data_dir).items()]
    return lines + ["}"]


def location() -> list[str]:
    """The location every plain-HTTP server has: ACME validation must reach it on port 80 by name,
    before any redirect to HTTPS."""
    return [
        f"location ^~ {PREFIX} {{",
        "    default_type text/plain;",
        f'    if ({VARIABLE} = "") {{ return 404; }}',
        f"    return 200 {VARIABLE};",
        "}",
    ]
