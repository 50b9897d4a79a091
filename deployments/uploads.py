"""An uploaded source tarball, streamed to a private file under the data dir
(core.data_paths.deploy_uploads()), never more than BERTH_DEPLOY_UPLOAD_MAX_BYTES; the deploy task
removes it once unpacked."""
import os
import uuid
from typing import BinaryIO

from core import config, data_paths
from core.errors import ApiError, BadRequest

CHUNK = 1024 * 1024


class PayloadTooLarge(ApiError):
    status = 413


def save(stream: BinaryIO) -> str:
    """Write the upload to a new 0600 file and return its path. An empty upload is refused (400),
    one over the limit is removed again (413)."""
    limit = config.get().deploy_upload_max_bytes
    folder = data_paths.deploy_uploads()
    os.makedirs(folder, mode=0o700, exist_ok=True)
    path = os.path.join(folder, f"{uuid.uuid4().hex}.tar")
    written = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(CHUNK):
                written += len(chunk)
                if written > limit:
                    raise PayloadTooLarge(f"The source tarball is larger than {limit} bytes")
                out.write(chunk)
        if written == 0:
            raise BadRequest("is empty", "file")
    except BaseException:
        os.unlink(path)
        raise
    return path


def discard(path: str) -> None:
    """Remove an upload no deploy will use (the request was refused after it was saved)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
