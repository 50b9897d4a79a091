"""The Cloudron icon that login pages and favicons load without a token (GET /cloudron/avatar), and
the UI languages clients may offer (GET /cloudron/languages).

The icon is the branding icon file when one is set (core.data_paths.cloudron_avatar); until then a
built-in default, drawn here so no binary file has to ship: a 128×128 PNG in Berth's blue. Uploading
a branding icon is the Branding tag's operation (not built yet); this only reads the file.
"""
import functools
import struct
import zlib

from core import data_paths

# The language codes Cloudron's dashboard offers; `language` (/settings/language) takes one of these.
LANGUAGES = ("de", "en", "es", "fr", "it", "nl", "pl", "pt", "ru", "zh_Hans")

_SIZE = 128
_COLOUR = bytes((0x1F, 0x6F, 0xB5))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


@functools.cache
def default_avatar() -> bytes:
    """A valid PNG (8-bit RGB, one colour), the icon of a Cloudron without a branding icon."""
    row = b"\x00" + _COLOUR * _SIZE  # filter byte "none", then the pixels
    header = struct.pack(">IIBBBBB", _SIZE, _SIZE, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
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
