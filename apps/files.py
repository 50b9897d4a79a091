"""The app's data folder through the API: /apps/{id}/files/{path} (the file manager) and
/apps/{id}/upload, /apps/{id}/download (the CLI's push and pull).

Only the folder Berth binds at /app/data is reachable (apps.data_dir: the custom data dir or
<data>/apps/<id>/data), and only through file_access.tree, which never follows a symlink: an app
that plants `x -> /etc` in its folder gets 403/404 for `x/passwd`, never the host's file.
Push and pull take container paths as Cloudron's CLI sends them; they are mapped to the data
folder (/app/data/<rel>, or a relative path taken under /app/data), anything else is refused.
"""
import posixpath
import zlib
from collections.abc import Iterator
from typing import BinaryIO

from apps import data_dir, get_app
from core.errors import BadRequest
from file_access import manager, tree

DATA_MOUNT = "/app/data"


def _root(app_id: str) -> str:
    get_app(app_id)  # NotFound for no such app
    return data_dir(app_id)


# The file manager routes (list, download, upload, make a folder, rename, copy, chown, extract,
# delete) on this root, as for volumes (file_access.manager).
browser = manager.FileManager(_root)


# --- push and pull ---------------------------------------------------------------------------

def data_relative(path: str) -> str:
    """The data-folder path of a container path given to push/pull."""
    clean = posixpath.normpath(path if path.startswith("/") else posixpath.join(DATA_MOUNT, path))
    if clean == DATA_MOUNT:
        return ""
    if not clean.startswith(DATA_MOUNT + "/"):
        raise BadRequest(f"only files under {DATA_MOUNT} can be transferred", "file")
    return clean[len(DATA_MOUNT) + 1:]


def _gzip(chunks: Iterator[bytes]) -> Iterator[bytes]:
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: gzip framing
    for chunk in chunks:
        if out := packer.compress(chunk):
            yield out
    yield packer.flush()


def download(app_id: str, path: str) -> tuple:
    """(filename, chunks, size or None): a file as it is, a folder as a .tar.gz of its contents
    (like Cloudron), both produced while sent."""
    root = _root(app_id)
    rel = data_relative(path)
    if tree.entry(root, rel)["type"] == "directory":
        name = (posixpath.basename(rel) or "data") + ".tar.gz"
        return name, _gzip(tree.tar_stream(root, rel)), None
    fileobj, size = tree.open_file(root, rel)
    return posixpath.basename(rel), manager.chunks(fileobj), size


def push(app_id: str, path: str, stream: BinaryIO, extract: bool) -> int:
    """Writes the uploaded file at the container path, or with extract=true unpacks the upload
    (a tar, gzip or not) into the folder at that path. Returns the bytes written."""
    root = _root(app_id)
    rel = data_relative(path)
    if extract:
        return tree.untar(root, rel, stream, manager.MAX_UPLOAD)
    if not rel:
        raise BadRequest(f"names the folder {DATA_MOUNT} itself, not a file", "file")
    return tree.write_file(root, rel, stream, manager.MAX_UPLOAD)
