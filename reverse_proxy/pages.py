"""The pages nginx shows instead of an app (stopped, installing, error, not responding) and the
catch-all 404, as nginx string literals ready for a `return` directive."""

NOT_FOUND_BODY = '{"status":"Not Found","message":"No app is served at this address"}'

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;background:#f4f5f7;color:#222;display:flex;
align-items:center;justify-content:center;height:100vh;margin:0}}main{{text-align:center}}
h1{{font-weight:500}}p{{color:#666}}</style></head>
<body><main><h1>{title}</h1><p>{text}</p><p><small>{host}</small></p></main></body></html>
"""
PAGES = {
    "stopped": ("This app is stopped",
                "An administrator has stopped this app. It is back as soon as it is started again."),
    "installing": ("This app is being installed",
                   "Installation is in progress; this page is replaced by the app when it is ready."),
    "error": ("This app is not available",
              "The app ran into a problem. An administrator can repair it from Berth."),
}
UNREACHABLE = ("This app is not responding", "The app is running but does not answer. Try again in a moment.")


def nginx_string(text: str) -> str:
    """`text` as a single-quoted nginx string. nginx has no escape for `$` (it would start a
    variable), so texts with it are refused rather than silently mangled."""
    if "$" in text:
        raise ValueError("nginx strings cannot contain '$'")
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def page(title: str, text: str, host: str) -> str:
    """The HTML page as an nginx string. `host` is a hostname checked by vhost_files.check_host, so
    it carries no markup."""
    return nginx_string(_PAGE.format(title=title, text=text, host=host))


def state_page(state: str, host: str) -> str:
    """The page of an app that is not running (a state of PAGES)."""
    return page(*PAGES[state], host)


def unreachable_page(host: str) -> str:
    return page(*UNREACHABLE, host)
