"""The file manager routes of apps and volumes answer alike (/apps/{id}/files/…,
/volumes/{id}/files/…): one implementation over the area's `browser` (a file manager bound to
the app's data folder or the volume's folder)."""
from urllib.parse import quote

import flask

from core.errors import BadRequest


def attachment(name):
    return f"attachment; filename*=utf-8''{quote(name)}"


def list_files(browser, key, file_path, download=False):
    kind, *rest = browser.get(key, file_path)
    if kind == "directory":
        return flask.jsonify(rest[0])  # the operation produces JSON or bytes: say which
    chunks, size, name = rest
    headers = {"Content-Length": str(size)}
    if download:
        headers["Content-Disposition"] = attachment(name)
    return flask.Response(chunks, mimetype="application/octet-stream", headers=headers)


def update_file(browser, key, file_path, body):
    browser.act(key, file_path, body)
    return {}


def create_file(browser, key, file_path, directory=False):
    request = flask.request
    if directory or (request.is_json and (request.get_json(silent=True) or {}).get("directory") is True):
        browser.make_dir(key, file_path)
        return {}
    upload = request.files.get("file")
    if upload is None:
        raise BadRequest("must be provided as multipart (or directory=true)", "file")
    overwrite = request.form.get("overwrite", "false").lower() == "true"
    browser.upload(key, file_path, upload.stream, overwrite)
    return {}


def delete_file(browser, key, file_path, recursive=True):
    browser.delete(key, file_path, recursive)
    return {}
