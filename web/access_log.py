"""Access log lines without credentials.

Cloudron clients pass their token in the query string (`?access_token=...`), and the access
log (uvicorn's, written to gunicorn's access log file, under systemd the journal) would keep
every such token readable for whoever reads the logs. A filter on the access logger rewrites
the value of every token-, key-, secret- or password-like query parameter before the line is
formatted, whatever runs the app (`berth serve`, gunicorn or uvicorn directly).
"""
import logging
import re
from urllib.parse import unquote_plus

ACCESS_LOGGERS = ("uvicorn.access", "gunicorn.access")
REDACTED = "REDACTED"

# A query parameter (`name=value` after `?` or `&`; at the start too: gunicorn's `%(q)s` atom is
# the query string without its `?`) whose name, percent-decoded as the server reads it, contains
# token, key, secret or password (access_token, api_key, apiKey, refresh_token, ...).
_PARAM = re.compile(r"((?:^|[?&])([^=&#\s\"]*)=)([^&#\s\"]*)")
_SECRET_NAME = re.compile(r"token|key|secret|password", re.IGNORECASE)


def _redact_param(match):
    if _SECRET_NAME.search(unquote_plus(match.group(2))):
        return match.group(1) + REDACTED
    return match.group(0)


def redact(text: str) -> str:
    """`/users?access_token=abc&page=2` -> `/users?access_token=REDACTED&page=2`."""
    return _PARAM.sub(_redact_param, text) if "=" in text else text


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):  # gunicorn's own access log formats from a dict
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def install() -> None:
    """Redact the access loggers of this process (idempotent)."""
    for name in ACCESS_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())
