"""Recognising uploaded images (icons, avatars) by their first bytes."""
IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"RIFF")


def is_image(data: bytes) -> bool:
    """PNG, JPEG, GIF or WebP (RIFF)."""
    return data.startswith(IMAGE_MAGIC)
