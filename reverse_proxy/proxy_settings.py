"""An app's reverse proxy settings (configure/reverse_proxy): robots.txt, Content-Security-Policy
and HSTS preload, as lines of its vhost.

The values end up inside nginx's configuration, so they are checked here, at render time, like
every other part of a vhost (vhost_files.py): nothing that could close the quoted string, start a
variable or a block, or split a header line gets through (ValueError; the apps layer turns the same
check into a 400 first). robots.txt keeps its lines: they are written as `\\n` escapes, which
nginx's parser turns back into newlines inside the quoted string.
"""
import re

MAX_LENGTH = 4096       # nginx's limit on an inline string, as Cloudron's
HSTS_PRELOAD = "max-age=63072000; includeSubDomains; preload"
# In both values: nothing that ends the quoted string or escapes (" \), starts a variable ($),
# opens or closes a block ({ }), or a control character (robots.txt may have line breaks and tabs).
_FORBIDDEN = set('"\\${}')
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def problem(field: str, value: object) -> str | None:
    """Why `value` is not acceptable for `field` (robotsTxt, csp, hstsPreload), or None."""
    if field == "hstsPreload":
        return None if isinstance(value, bool) else "must be a boolean"
    if value is None:
        return None
    if not isinstance(value, str):
        return "must be a string or null"
    if len(value) > MAX_LENGTH:
        return f"must be at most {MAX_LENGTH} characters"
    bad = sorted(_FORBIDDEN & set(value))
    if bad:
        return f"must not contain {' '.join(bad)}"
    control = _CONTROL_IN_TEXT if field == "robotsTxt" else _CONTROL
    if control.search(value):
        return "must not contain control characters" + (" other than line breaks and tabs"
                                                        if field == "robotsTxt" else " or line breaks")
    return None


def normalise(config: dict | None) -> dict | None:
    """{robotsTxt, csp, hstsPreload} checked (ValueError), or None when it sets nothing."""
    if not config:
        return None
    if not isinstance(config, dict) or set(config) - {"robotsTxt", "csp", "hstsPreload"}:
        raise ValueError(f"proxy_config: unexpected {config!r}")
    out = {"robotsTxt": config.get("robotsTxt") or None, "csp": config.get("csp") or None,
           "hstsPreload": config.get("hstsPreload", False)}
    for field, value in out.items():
        why = problem(field, value)
        if why:
            raise ValueError(f"proxy_config.{field} {why}")
    return out if (out["robotsTxt"] or out["csp"] or out["hstsPreload"]) else None


def server_lines(config: dict | None) -> list[str]:
    """Lines for the app's TLS server block (running state): the headers, and robots.txt."""
    config = normalise(config)
    if config is None:
        return []
    out = []
    if config["csp"]:
        out.append(f'add_header Content-Security-Policy "{config["csp"]}" always;')
    if config["hstsPreload"]:
        out.append(f'add_header Strict-Transport-Security "{HSTS_PRELOAD}" always;')
    if config["robotsTxt"]:
        text = config["robotsTxt"].replace("\r\n", "\n").replace("\r", "\n")
        escaped = text.replace("\n", "\\n").replace("\t", "\\t")
        out += ["location = /robots.txt {", "    default_type text/plain;", f'    return 200 "{escaped}";', "}"]
    return out
