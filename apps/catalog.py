"""The app catalog that `appStoreId` refers to: a JSON file (or http(s) URL) named by the
setting `app_catalog` or the environment variable BERTH_APP_CATALOG.

Format: {"apps": [<manifest>, ...]} with one entry per published version; `id@version` picks
a version, a bare `id` the highest one.
"""
import json
import urllib.request

from core import config
from core.errors import DependencyFailed, NotFound
from models import Setting


def _source():
    return Setting.read("app_catalog") or config.get().app_catalog


def _load():
    source = _source()
    if not source:
        raise NotFound("No app catalog is configured (setting app_catalog or BERTH_APP_CATALOG)")
    try:
        if source.startswith(("http://", "https://")):
            with urllib.request.urlopen(source, timeout=10) as answer:
                return json.load(answer)
        with open(source) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise DependencyFailed(f"Cannot read the app catalog {source}: {e}") from None


def version_key(version: object) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else 0 for p in str(version).split("-")[0].split("."))


def resolve(app_store_id: str) -> tuple[str, dict]:
    """(id@version, manifest) for an appStoreId, or NotFound."""
    wanted, _, version = app_store_id.partition("@")
    candidates = [m for m in _load().get("apps", []) if m.get("id") == wanted
                  and (not version or m.get("version") == version)]
    if not candidates:
        raise NotFound(f"No app {app_store_id!r} in the app catalog")
    manifest = max(candidates, key=lambda m: version_key(m.get("version", "0")))
    return f"{manifest['id']}@{manifest['version']}", manifest
