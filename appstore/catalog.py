"""The app catalogs that `appStoreId` and the /appstore routes refer to.

A catalog is a JSON document, a local file or an http(s) URL: {"apps": [<manifest>, ...]} with one
entry per published version. The sources are the setting `app_catalog` (set at run time through
/settings/appstore_config) or else the environment variable BERTH_APP_CATALOG; both hold one or more
sources separated by commas. The setting replaces the environment's list, it does not add to it.

When two catalogs publish the same app id, the first catalog in the list that has it wins for every
version of that app: catalogs are not merged version by version, so a later catalog cannot slip a
different image in under a version number the first one already publishes.

Catalogs are read on every call (Berth keeps no copy), so an edited catalog shows at once. One
unreadable catalog fails the whole call (424) rather than answering a silently shorter list.
"""
import base64
import json
import os
import urllib.parse
import urllib.request
from collections.abc import Iterator

from core import config, images
from core.errors import DependencyFailed, NotFound
from models import Setting

SETTING = "app_catalog"
TIMEOUT_SECS = 10
ICON_MAX_BYTES = 512 * 1024
_MIME = {b"\x89PNG": "image/png", b"\xff\xd8\xff": "image/jpeg", b"GIF8": "image/gif", b"RIFF": "image/webp"}


def sources() -> list[str]:
    """The configured catalog sources, in order of precedence."""
    raw = Setting.read(SETTING) or config.get().app_catalog
    return [s.strip() for s in str(raw or "").split(",") if s.strip()]


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def read(source: str) -> list[dict]:
    """The app entries of one catalog (entries without a string id and version are left out);
    DependencyFailed naming the source when it cannot be read or is not a catalog."""
    try:
        if is_url(source):
            with urllib.request.urlopen(source, timeout=TIMEOUT_SECS) as answer:
                document = json.load(answer)
        else:
            with open(source) as f:
                document = json.load(f)
    except (OSError, ValueError) as e:
        raise DependencyFailed(f"Cannot read the app catalog {source}: {e}") from None
    entries = document.get("apps") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise DependencyFailed(f"The app catalog {source} has no \"apps\" list")
    return [m for m in entries if isinstance(m, dict) and isinstance(m.get("id"), str)
            and isinstance(m.get("version"), str)]


def _load() -> Iterator[tuple[str, dict]]:
    """(source, manifest) of every app version, each app id from the first catalog that has it."""
    configured = sources()
    if not configured:
        raise NotFound("No app catalog is configured (setting app_catalog or BERTH_APP_CATALOG)")
    owner: dict[str, str] = {}
    for source in configured:
        for manifest in read(source):
            if owner.setdefault(manifest["id"], source) == source:
                yield source, manifest


def version_key(version: object) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else 0 for p in str(version).split("-")[0].split("."))


def _versions_by_app() -> dict[str, list[tuple[str, dict]]]:
    apps: dict[str, list[tuple[str, dict]]] = {}
    for source, manifest in _load():
        apps.setdefault(manifest["id"], []).append((source, manifest))
    for versions in apps.values():
        versions.sort(key=lambda sm: version_key(sm[1]["version"]))
    return apps


def resolve(app_store_id: str) -> tuple[str, dict]:
    """(id@version, manifest) for an appStoreId (`id` = newest version, `id@version`), or NotFound."""
    wanted, _, version = app_store_id.partition("@")
    candidates = [m for _, m in _versions_by_app().get(wanted, []) if not version or m["version"] == version]
    if not candidates:
        raise NotFound(f"No app {app_store_id!r} in the app catalog")
    manifest = candidates[-1]
    return f"{manifest['id']}@{manifest['version']}", manifest


# ---- what the /appstore routes answer -----------------------------------------------------------

def icon_url(source: str, manifest: dict) -> str | None:
    """Where a client gets the app's icon: the entry's `iconUrl`, else its `icon` (Cloudron's
    `file://logo.png` form or a relative path): for a URL catalog an address beside the catalog,
    for a file catalog the image itself as a data: URL (read only from the catalog's own folder)."""
    if isinstance(manifest.get("iconUrl"), str) and manifest["iconUrl"].startswith(("http://", "https://", "data:")):
        return manifest["iconUrl"]
    icon = manifest.get("icon")
    if not isinstance(icon, str) or not icon:
        return None
    relative = icon.removeprefix("file://")
    if is_url(relative):
        return relative
    if is_url(source):
        return urllib.parse.urljoin(source, relative)
    folder = os.path.realpath(os.path.dirname(source))
    path = os.path.realpath(os.path.join(folder, relative))
    if os.path.commonpath([folder, path]) != folder:
        return None   # outside the catalog's folder: not an icon this catalog may hand out
    try:
        with open(path, "rb") as f:
            data = f.read(ICON_MAX_BYTES + 1)
    except OSError:
        return None
    if len(data) > ICON_MAX_BYTES or not images.is_image(data):
        return None
    mime = next(m for magic, m in _MIME.items() if data.startswith(magic))
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _entry(source: str, manifest: dict, versions: list[str] | None = None) -> dict:
    entry = {"id": manifest["id"], "version": manifest["version"], "iconUrl": icon_url(source, manifest),
             "manifest": manifest}
    if versions is not None:
        entry["versions"] = versions
    return entry


def _matches(manifest: dict, needle: str) -> bool:
    fields = [manifest.get(k) for k in ("id", "title", "tagline", "description", "author")]
    fields += manifest.get("tags") if isinstance(manifest.get("tags"), list) else []
    return any(isinstance(f, str) and needle in f.lower() for f in fields)


def list_apps(search: str | None = None) -> list[dict]:
    """The newest version of every catalog app, sorted by title; `search` matches (case-insensitive)
    id, title, tagline, description, author and tags."""
    needle = (search or "").strip().lower()
    latest = [versions[-1] for versions in _versions_by_app().values()]
    found = [_entry(s, m) for s, m in latest if not needle or _matches(m, needle)]
    return sorted(found, key=lambda e: (str(e["manifest"].get("title") or e["id"]).lower(), e["id"]))


def get_app(app_id: str) -> dict:
    """The app's newest version with the list of every published version."""
    versions = _versions_by_app().get(app_id)
    if not versions:
        raise NotFound("No such app")
    source, manifest = versions[-1]
    return _entry(source, manifest, [m["version"] for _, m in versions])


def get_app_version(app_id: str, version: str) -> dict:
    """One published version (`latest` = the newest, as Cloudron's store answers)."""
    versions = _versions_by_app().get(app_id, [])
    if version == "latest" and versions:
        return _entry(*versions[-1])
    for source, manifest in versions:
        if manifest["version"] == version:
            return _entry(source, manifest)
    raise NotFound("No such app or version")
