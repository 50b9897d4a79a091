"""The file manager's operations on a root folder (the /apps/{id}/files and /volumes/{id}/files
routes answer alike): list a folder or stream a file, upload, make a folder, rename, copy, chown,
extract, delete. Everything goes through file_access.tree, which never follows a symlink."""
import posixpath
from collections.abc import Callable, Iterator
from typing import BinaryIO

from core.errors import BadRequest, Conflict, NotFound
from file_access import tree

MAX_UPLOAD = 1 << 30  # the upload operations' x-max-body-bytes: a file is never larger than its body
CHUNK = 64 * 1024


def _file_entry(rel: str, item: dict) -> dict:
    out = {"fileName": item["name"], "filePath": posixpath.join("/", rel, item["name"]),
           "isDirectory": item["type"] == "directory", "isFile": item["type"] == "file",
           "isSymbolicLink": item["type"] == "symlink", "size": item["size"], "mtime": item["mtime"],
           "uid": item["uid"], "gid": item["gid"], "mode": item["mode"]}
    if "target" in item:
        out["target"] = item["target"]
    return out


def chunks(fileobj: BinaryIO) -> Iterator[bytes]:
    with fileobj:
        while chunk := fileobj.read(CHUNK):
            yield chunk


def get(root: str, rel: str) -> tuple:
    """("directory", {"entries": [...]}) for a folder, ("file", chunks, size, name) for a file."""
    if tree.entry(root, rel)["type"] == "directory":
        parent = "/".join(tree.parts(rel))
        return "directory", {"entries": [_file_entry(parent, e) for e in tree.list_dir(root, rel)]}
    fileobj, size = tree.open_file(root, rel)
    return "file", chunks(fileobj), size, tree.parts(rel)[-1]


def upload(root: str, rel: str, stream: BinaryIO, overwrite: bool) -> int:
    """Writes the file rel from the stream (streamed to disk, at most MAX_UPLOAD bytes)."""
    if not overwrite:
        try:
            tree.entry(root, rel)
            raise Conflict(f"Already exists: {rel} (send overwrite=true to replace it)")
        except NotFound:
            pass
    return tree.write_file(root, rel, stream, MAX_UPLOAD)


def make_dir(root: str, rel: str) -> None:
    tree.make_dir(root, rel)


def act(root: str, rel: str, body: dict) -> None:
    """PUT: rename, copy, chown or extract (an archive in the folder, into the folder it is in)."""
    action = body["action"]
    if action in ("rename", "copy"):
        target = body.get("newFilePath")
        if not target:
            raise BadRequest("is required for rename and copy", "newFilePath")
        if action == "rename":
            tree.rename(root, rel, target)
        else:
            tree.copy(root, rel, target, MAX_UPLOAD)
    elif action == "chown":
        if body.get("uid") is None:
            raise BadRequest("is required for chown", "uid")
        tree.chown(root, rel, body["uid"], body["uid"], bool(body.get("recursive")))
    else:  # extract
        fileobj, _size = tree.open_file(root, rel)
        with fileobj:
            tree.untar(root, "/".join(tree.parts(rel)[:-1]), fileobj, MAX_UPLOAD)


def delete(root: str, rel: str, recursive: bool) -> None:
    tree.delete(root, rel, recursive)


class FileManager:
    """The operations above on the folder `root_of(key)` names (an app's data folder, a volume):
    what the files routes of apps and volumes share."""

    def __init__(self, root_of: Callable[[str], str]) -> None:
        self.root_of = root_of

    def get(self, key: str, rel: str) -> tuple:
        return get(self.root_of(key), rel)

    def upload(self, key: str, rel: str, stream: BinaryIO, overwrite: bool) -> int:
        return upload(self.root_of(key), rel, stream, overwrite)

    def make_dir(self, key: str, rel: str) -> None:
        make_dir(self.root_of(key), rel)

    def act(self, key: str, rel: str, body: dict) -> None:
        act(self.root_of(key), rel, body)

    def delete(self, key: str, rel: str, recursive: bool) -> None:
        delete(self.root_of(key), rel, recursive)
