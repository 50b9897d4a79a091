"""The Branding tag over HTTP: the Cloudron name, icon and footer, their validation, and where they
show (the older /settings paths, the public icon, /cloudron/status and /config)."""
import struct
import zlib

import pytest

from support.harness import Api, BerthServer, activate

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png(width, height, colour=(200, 30, 30), padding=b""):
    """A valid RGB PNG of one colour; `padding` goes into an ancillary chunk (to make it big)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    rows = (b"\x00" + bytes(colour) * width) * height
    extra = chunk(b"tEXt", b"Comment\x00" + padding) if padding else b""
    return (PNG_MAGIC + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + extra
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def server():
    berth = BerthServer().start()
    try:
        yield berth
    finally:
        berth.cleanup()


@pytest.fixture(scope="module")
def owner(server):
    return activate(server)


def test_cloudron_name_round_trip_shows_everywhere(server, owner):
    assert owner.get("/branding/cloudron_name").json() == {"name": "Berth"}          # the default
    r = owner.post("/branding/cloudron_name", json={"name": "  Harbour Office  "})
    assert r.status_code == 202, r.text
    assert owner.get("/branding/cloudron_name").json() == {"name": "Harbour Office"}
    assert owner.get("/settings/cloudron_name").json() == {"name": "Harbour Office"}  # one setting
    assert Api(server.api).get("/cloudron/status").json()["cloudronName"] == "Harbour Office"
    assert owner.get("/config").json()["cloudronName"] == "Harbour Office"
    assert owner.post("/settings/cloudron_name", json={"name": "Quay"}).status_code == 202
    assert owner.get("/branding/cloudron_name").json() == {"name": "Quay"}


@pytest.mark.parametrize("name", ["", "   ", "x" * 65, "Evil\r\nBcc: all@example.com", "tab\there", "nul\x00",
                                  "line\u2028separator"])
def test_a_bad_cloudron_name_is_a_400_naming_the_field(owner, name):
    before = owner.get("/branding/cloudron_name").json()
    for path in ("/branding/cloudron_name", "/settings/cloudron_name"):
        r = owner.post(path, json={"name": name})
        assert r.status_code == 400 and "name" in r.json()["message"], (path, r.text)
    assert owner.get("/branding/cloudron_name").json() == before
    assert owner.post("/branding/cloudron_name", json={}).status_code == 400


def test_avatar_default_then_upload_is_served_on_every_path(server, owner):
    r = owner.get("/branding/cloudron_avatar")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.headers
    default = r.content
    assert default.startswith(PNG_MAGIC) and len(default) > 50

    icon = png(16, 16)
    r = owner.post("/branding/cloudron_avatar", files={"avatar": ("icon.png", icon, "image/png")})
    assert r.status_code == 202, r.text
    for path in ("/branding/cloudron_avatar", "/settings/cloudron_avatar"):
        r = owner.get(path)
        assert (r.status_code, r.content, r.headers["cache-control"]) == (200, icon, "no-cache"), path
    assert Api(server.api).get("/cloudron/avatar").content == icon           # the public copy

    # The older path uploads to the same file.
    other = png(8, 8, (0, 0, 255))
    r = owner.post("/settings/cloudron_avatar", files={"avatar": ("x.png", other, "image/png")})
    assert r.status_code == 202, r.text
    assert owner.get("/branding/cloudron_avatar").content == other


@pytest.mark.parametrize("what, data", [
    ("jpeg", b"\xff\xd8\xff\xe0" + b"\x00" * 100),
    ("html claiming to be png", b"<svg onload=alert(1)>"),
    ("signature only", PNG_MAGIC + b"not a chunk"),
    ("empty", b""),
    ("too big", png(4, 4, padding=b"x" * (1024 * 1024))),
])
def test_an_upload_that_is_not_a_png_within_the_limit_is_a_400(owner, what, data):
    before = owner.get("/branding/cloudron_avatar").content
    for path in ("/branding/cloudron_avatar", "/settings/cloudron_avatar"):
        r = owner.post(path, files={"avatar": ("icon.png", data, "image/png")})
        assert r.status_code == 400 and "avatar" in r.json()["message"], (what, path, r.text)
    assert owner.get("/branding/cloudron_avatar").content == before
    missing = owner.post("/branding/cloudron_avatar", files={"other": ("a.png", png(2, 2), "image/png")})
    assert missing.status_code == 400


def test_footer_round_trip_shows_in_status_and_config(server, owner):
    assert owner.get("/branding/footer").json() == {"footer": ""}
    footer = "© 2026 [Harbour](https://harbour.example)\n\n*Made with Berth*\twith a tab"
    assert owner.post("/branding/footer", json={"footer": footer}).status_code == 200
    assert owner.get("/branding/footer").json() == {"footer": footer}
    assert Api(server.api).get("/cloudron/status").json()["footer"] == footer
    assert owner.get("/config").json()["footer"] == footer
    for bad in ("x" * 4097, "bell\x07", "esc\x1b[31m"):
        r = owner.post("/branding/footer", json={"footer": bad})
        assert r.status_code == 400 and "footer" in r.json()["message"], r.text
    assert owner.get("/branding/footer").json() == {"footer": footer}
    assert owner.post("/branding/footer", json={"footer": ""}).status_code == 200
    assert owner.get("/branding/footer").json() == {"footer": ""}
