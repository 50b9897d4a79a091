"""A small JSON file beside the configuration: the last error applying or starting (shown by
status() until a later apply succeeds) and whether any domain is enabled (restart() needs it)."""
import json

from core import files
from mail_server.layout import Layout


def read(layout: Layout) -> dict:
    try:
        return json.loads(files.read_text(layout.state) or "{}")
    except ValueError:
        return {}


def write(layout: Layout, **values: object) -> None:
    files.write_atomic(layout.state, json.dumps({**read(layout), **values}), 0o600)
