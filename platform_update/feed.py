"""The release feed (BERTH_RELEASE_FEED) and the version Berth runs.

The feed is a JSON document at an http(s) URL:

    {"releases": [{"version": "1.1.0", "url": "berth-1.1.0.tar.gz",
                   "sha256": "<64 hex digits>", "changelog": ["...", "..."]}, ...]}

`url` is the release artifact (an sdist or wheel of the `berth` package pip can install), absolute
or relative to the feed's URL. Versions are dotted numbers ("1.10.2"); an entry with another form
or without a 64-hex-digit sha256 is not a release Berth can verify and is left out.
"""
import importlib.metadata
import json
import re
import urllib.parse
import urllib.request

from core import config
from core.errors import DependencyFailed

TIMEOUT_SECS = 15
_VERSION = re.compile(r"^\d+(\.\d+){0,3}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def running_version() -> str:
    """The version of the installed `berth` distribution (setup.cfg metadata)."""
    try:
        return importlib.metadata.version("berth")
    except importlib.metadata.PackageNotFoundError:   # running from a tree that was never installed
        return config.get().version


def version_key(version: str) -> tuple[int, ...]:
    parts = [int(p) for p in version.split(".")]
    return tuple(parts + [0] * (4 - len(parts)))


def is_newer(candidate: str, current: str) -> bool:
    return bool(_VERSION.match(candidate)) and (not _VERSION.match(current)
                                                or version_key(candidate) > version_key(current))


def _release(entry: object, feed_url: str) -> dict | None:
    if not isinstance(entry, dict):
        return None
    version, url, sha256 = entry.get("version"), entry.get("url"), entry.get("sha256")
    if not (isinstance(version, str) and _VERSION.match(version) and isinstance(url, str) and url
            and isinstance(sha256, str) and _SHA256.match(sha256.lower())):
        return None
    url = urllib.parse.urljoin(feed_url, url)
    if urllib.parse.urlparse(url).scheme not in ("http", "https"):
        return None
    changelog = entry.get("changelog")
    changelog = [changelog] if isinstance(changelog, str) else changelog if isinstance(changelog, list) else []
    return {"version": version, "sourceTarballUrl": url, "sha256": sha256.lower(),
            "changelog": [str(line) for line in changelog]}


def releases(feed_url: str | None = None) -> list[dict]:
    """The feed's usable releases, oldest first; DependencyFailed when there is no feed or it cannot
    be read."""
    feed_url = feed_url or config.get().release_feed
    if not feed_url:
        raise DependencyFailed("No release feed is configured (BERTH_RELEASE_FEED): Berth cannot check for updates")
    try:
        with urllib.request.urlopen(feed_url, timeout=TIMEOUT_SECS) as answer:
            document = json.load(answer)
    except (OSError, ValueError) as e:
        raise DependencyFailed(f"Cannot read the release feed {feed_url}: {e}") from None
    entries = document.get("releases") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise DependencyFailed(f"The release feed {feed_url} has no \"releases\" list")
    found = [r for r in (_release(e, feed_url) for e in entries) if r is not None]
    return sorted(found, key=lambda r: version_key(r["version"]))


def newest_above(current: str, feed_url: str | None = None) -> dict | None:
    """The newest release above `current`, or None when Berth is up to date."""
    newer = [r for r in releases(feed_url) if is_newer(r["version"], current)]
    return newer[-1] if newer else None
