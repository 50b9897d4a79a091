"""What a deploy may be built from, checked before anything is recorded.

A git URL is handed to `git clone`, which also knows transports that run programs (`ext::`) or
read this server's own files (`file://`, plain paths): only http(s), ssh, git and scp-like
`user@host:path` URLs are taken, and the clone allows only those protocols again
(GIT_ALLOW_PROTOCOL). A ref or URL starting with `-` would be read as an option.
"""
import os
import re

from core.errors import BadRequest

GIT_URL = re.compile(r"^(?:(?:https?|ssh|git)://[^\s/?#@][^\s]*|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+)$")
GIT_REF = re.compile(r"^(?!-)(?!.*\.\.)[A-Za-z0-9._/@+-]{1,200}$")
COMMIT = re.compile(r"^[0-9a-fA-F]{7,64}$")
IMAGE = re.compile(r"^[a-z0-9][a-z0-9._/:@-]{0,300}$")
ALLOWED_PROTOCOLS = "http:https:ssh:git"
TYPES = ("tarball", "git", "image")


def _text(value, field, required=True):
    if value in (None, "") and not required:
        return None
    if not isinstance(value, str) or not value:
        raise BadRequest("is required (a string)", field)
    return value


def check(source: object, field: str = "source") -> dict:
    """The source, normalised: {type: tarball, path} | {type: git, url, ref, commit, token,
    deployKey} | {type: image, image}. Raises BadRequest naming the field."""
    if not isinstance(source, dict):
        raise BadRequest("must be an object with a type (tarball, git or image)", field)
    kind = source.get("type")
    if kind not in TYPES:
        raise BadRequest("must be tarball, git or image", f"{field}.type")
    if kind == "tarball":
        path = _text(source.get("path"), f"{field}.path")
        if not os.path.isabs(path) or not os.path.isfile(path):
            raise BadRequest("must be an uploaded file", f"{field}.path")
        return {"type": "tarball", "path": os.path.normpath(path)}
    if kind == "image":
        image = _text(source.get("image"), f"{field}.image")
        if not IMAGE.match(image):
            raise BadRequest("must be an image reference like 'name:tag'", f"{field}.image")
        return {"type": "image", "image": image}
    url = _text(source.get("url"), f"{field}.url")
    if not GIT_URL.match(url):
        raise BadRequest("must be an http(s), ssh, git or user@host:path repository URL", f"{field}.url")
    if re.match(r"^[a-z]+://[^/@]*:[^/@]*@", url):
        # the deployment row and the task log show the URL: a password in it would be shown too
        raise BadRequest("must not carry a password; give it as token", f"{field}.url")
    ref = _text(source.get("ref"), f"{field}.ref", required=False) or "HEAD"
    if ref != "HEAD" and not GIT_REF.match(ref):
        raise BadRequest("must be a branch, tag or commit name", f"{field}.ref")
    commit = _text(source.get("commit"), f"{field}.commit", required=False)
    if commit is not None and not COMMIT.match(commit):
        raise BadRequest("must be a commit id (hex)", f"{field}.commit")
    token = _text(source.get("token"), f"{field}.token", required=False)
    deploy_key = _text(source.get("deployKey"), f"{field}.deployKey", required=False)
    if token and deploy_key:
        raise BadRequest("give a token or a deploy key, not both", f"{field}.token")
    if token and not url.startswith(("https://", "http://")):
        raise BadRequest("a token works with http(s) URLs only", f"{field}.token")
    if deploy_key and url.startswith(("https://", "http://")):
        raise BadRequest("a deploy key works with ssh URLs only", f"{field}.deployKey")
    return {"type": "git", "url": url, "ref": ref, "commit": commit, "token": token, "deployKey": deploy_key}


def check_build_args(build_args: object, field: str = "buildArgs") -> dict[str, str]:
    if build_args is None:
        return {}
    if not isinstance(build_args, dict):
        raise BadRequest("must be an object of NAME: value", field)
    clean = {}
    for name, value in build_args.items():
        if not isinstance(name, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$", name):
            raise BadRequest("names must be identifiers", f"{field}.{name}")
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise BadRequest("must be a string", f"{field}.{name}")
        clean[name] = str(value)
    return clean
