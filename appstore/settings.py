"""The catalog sources set at run time (GET/POST /settings/appstore_config, a Berth extension).

Each source is tried before it is saved (like the backup storage is probed): a catalog that cannot
be read is refused with 424 and nothing changes. Local sources must be absolute paths of `.json`
files, so the route cannot be used to make the server read arbitrary files; the error text never
echoes a file's content.
"""
import os
import urllib.parse

import eventlog
from appstore import catalog
from core import config
from core.errors import BadRequest
from models import Setting

MAX_SOURCES = 16


def get_config() -> dict:
    """{catalogs: [...], fromEnvironment}: the sources in force and whether they come from
    BERTH_APP_CATALOG (no run-time setting stored)."""
    stored = Setting.read(catalog.SETTING)
    return {"catalogs": catalog.sources(), "fromEnvironment": not stored and bool(config.get().app_catalog)}


def _check(source: object, index: int) -> str:
    field = f"catalogs[{index}]"
    if not isinstance(source, str) or not source.strip():
        raise BadRequest("must be a non-empty string", field)
    source = source.strip()
    if "," in source:
        raise BadRequest("must not contain a comma (give each catalog as its own entry)", field)
    if catalog.is_url(source):
        if not urllib.parse.urlparse(source).netloc:
            raise BadRequest("is not an http(s) URL", field)
    elif not (os.path.isabs(source) and source.endswith(".json")):
        raise BadRequest("must be an http(s) URL or the absolute path of a .json file", field)
    return source


def set_config(actor: eventlog.Actor, body: dict) -> dict:
    """Replace the sources (an empty list goes back to BERTH_APP_CATALOG). Each one is read first."""
    wanted = body.get("catalogs")
    if not isinstance(wanted, list) or len(wanted) > MAX_SOURCES:
        raise BadRequest(f"must be a list of at most {MAX_SOURCES} catalogs", "catalogs")
    checked = [_check(s, i) for i, s in enumerate(wanted)]
    for source in checked:
        catalog.read(source)   # DependencyFailed (424) names the source that failed
    Setting.put(catalog.SETTING, ",".join(checked))
    eventlog.record("appstore.config", actor, catalogs=checked)
    return get_config()
