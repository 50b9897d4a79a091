"""Branding: the Cloudron icon, the footer, and the UI languages clients may offer.

The icon (/branding/cloudron_avatar, its older path /settings/cloudron_avatar, and the public copy
login pages and favicons load without a token, GET /cloudron/avatar) is one file
(core.data_paths.cloudron_avatar); until one is uploaded, a built-in default drawn here so no binary
file has to ship: a 128×128 PNG in Berth's blue. Uploads must be PNG (by signature and header
chunk, not by what the client claims), as every consumer serves it as image/png.

The footer is Markdown the dashboard shows under its pages (in /cloudron/status and /config).
The name lives with the other settings (platform_settings.set_cloudron_name).
"""
import functools
import os
import struct
import unicodedata
import zlib

import eventlog
from core import data_paths
from core.errors import BadRequest
from core.files import write_atomic
from models import Setting

# The language codes Cloudron's dashboard offers; `language` (/settings/language) takes one of these.
LANGUAGES = ("de", "en", "es", "fr", "it", "nl", "pl", "pt", "ru", "zh_Hans")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_AVATAR_BYTES = 1024 * 1024
FOOTER = "footer"
MAX_FOOTER_CHARS = 4096

_SIZE = 128
_COLOUR = bytes((0x1F, 0x6F, 0xB5))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


@functools.cache
def default_avatar() -> bytes:
    """A valid PNG (8-bit RGB, one colour), the icon of a Cloudron without a branding icon."""
    row = b"\x00" + _COLOUR * _SIZE  # filter byte "none", then the pixels
    header = struct.pack(">IIBBBBB", _SIZE, _SIZE, 8, 2, 0, 0, 0)
    return (PNG_SIGNATURE + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(row * _SIZE, 9)) + _chunk(b"IEND", b""))


def cloudron_avatar() -> bytes:
    """The branding icon when one is set, else the default."""
    try:
        with open(data_paths.cloudron_avatar(), "rb") as f:
            data = f.read()
    except (FileNotFoundError, NotADirectoryError):
        return default_avatar()
    return data or default_avatar()


def languages() -> list[str]:
    return list(LANGUAGES)


def set_cloudron_avatar(actor: eventlog.Actor, data: bytes) -> None:
    """Store an uploaded icon (400 naming `avatar` unless it is a PNG of at most 1 MiB)."""
    if not data:
        raise BadRequest("is empty", "avatar")
    if len(data) > MAX_AVATAR_BYTES:
        raise BadRequest(f"must be at most {MAX_AVATAR_BYTES // 1024} KiB", "avatar")
    # The signature, then the IHDR chunk every PNG starts with (length 13).
    if not data.startswith(PNG_SIGNATURE) or data[8:16] != b"\x00\x00\x00\x0dIHDR":
        raise BadRequest("must be a PNG image", "avatar")
    path = data_paths.cloudron_avatar()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_atomic(path, data)  # a half-written file never replaces the old icon
    eventlog.record("cloudron.settings", actor, setting="cloudron_avatar", bytes=len(data))


def footer() -> str:
    return Setting.read(FOOTER) or ""


def set_footer(actor: eventlog.Actor, text: str) -> None:
    """Markdown of at most 4096 characters; line breaks and tabs are its business, other control
    characters are refused (400 naming `footer`)."""
    if not isinstance(text, str) or len(text) > MAX_FOOTER_CHARS:
        raise BadRequest(f"must be text of at most {MAX_FOOTER_CHARS} characters", "footer")
    if any(unicodedata.category(c) == "Cc" and c not in "\n\r\t" for c in text):
        raise BadRequest("must not contain control characters", "footer")
    Setting.put(FOOTER, text)
    eventlog.record("cloudron.settings", actor, setting=FOOTER, value=text)
