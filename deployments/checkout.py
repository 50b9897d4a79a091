"""Getting a source onto disk for a build: a tarball unpacked, or a git repository checked out,
into a scratch folder of the task (core.data_paths.deploy_work()/<deployment id>).

Tarballs go through file_access.tree.untar, which refuses members leaving the folder (absolute,
'..'), links pointing out, hard links out, devices and FIFOs, and stops at a size limit.

git runs through core.commands with argument lists. A token is given to git as an HTTP header in
its environment (GIT_CONFIG_COUNT/KEY/VALUE: not on the command line, where `ps` shows it, and
not in .git/config, which the build context would carry). A deploy key is written to a 0600 file
in a private temporary folder used by GIT_SSH_COMMAND and removed afterwards. Neither is logged:
git's output is scrubbed of them before it reaches the task log or an error.
"""
import base64
import os
import shutil
import tempfile
from collections.abc import Callable

from core import commands, config
from core.errors import BadRequest
from deployments import sources
from file_access import tree

GIT_TIMEOUT = 600
CONTEXT = "src"


def unpack_tarball(path: str, dest: str) -> str:
    """Unpack the tarball (gzip or plain) at `path` into `dest`/src; returns the build context:
    that folder, or its only subfolder when the archive wraps everything in one (`app/...`)."""
    target = os.path.join(dest, CONTEXT)
    os.makedirs(target, mode=0o700)
    limit = 4 * config.get().deploy_upload_max_bytes
    with open(path, "rb") as stream:
        try:
            tree.untar(dest, CONTEXT, stream, limit)
        except BadRequest as e:
            raise BadRequest(f"The source tarball cannot be used: {e.message}") from None
    return context_of(target)


def context_of(folder: str) -> str:
    if os.path.exists(os.path.join(folder, "Dockerfile")):
        return folder
    entries = [e for e in os.scandir(folder) if not e.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir(follow_symlinks=False) \
            and os.path.isfile(os.path.join(entries[0].path, "Dockerfile")):
        return entries[0].path
    raise BadRequest("The source has no Dockerfile at its top (or in its only folder)")


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "********")
    return text


def _git_env(token: str | None, key_file: str | None, home: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "SSL_CERT_FILE", "SSL_CERT_DIR")}
    env.update({"HOME": home, "GIT_TERMINAL_PROMPT": "0",
           "GIT_ALLOW_PROTOCOL": sources.ALLOWED_PROTOCOLS, "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"})
    if token:
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        env.update({"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
                    "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}"})
    known_hosts = os.path.join(home, "known_hosts")
    ssh = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new",
           "-o", f"UserKnownHostsFile={known_hosts}"]
    if key_file:
        ssh += ["-o", "IdentitiesOnly=yes", "-i", key_file]
    env["GIT_SSH_COMMAND"] = " ".join(ssh)
    return env


def clone(source: dict, dest: str, log: Callable[[str], None], token: str | None = None,
          deploy_key: str | None = None) -> tuple[str, str]:
    """Check out `source` ({url, ref, commit}) into `dest`/src without its .git; returns (build
    context, commit id). Only the wanted ref is fetched (depth 1 unless a commit is named)."""
    target = os.path.join(dest, CONTEXT)
    os.makedirs(target, mode=0o700)
    home = tempfile.mkdtemp(prefix="git-", dir=dest)      # 0700; the key file and known_hosts
    secrets = [token or "", deploy_key or ""]
    if token:
        secrets.append(base64.b64encode(f"x-access-token:{token}".encode()).decode())
    key_file = None
    try:
        if deploy_key:
            key_file = os.path.join(home, "deploy_key")
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(deploy_key.strip() + "\n")
        env = _git_env(token, key_file, home)

        def git(*args, timeout=GIT_TIMEOUT):
            try:
                return commands.run(["git", *args], env=env, cwd=target, timeout=timeout).stdout.strip()
            except commands.CommandError as e:
                raise BadRequest(_scrub(f"git {args[0]} failed: {e.output or e}", secrets).strip()) from None

        url, ref, commit = source["url"], source.get("ref") or "HEAD", source.get("commit")
        log(f"Fetching {_scrub(url, secrets)} {ref}" + (f" at {commit}" if commit else ""))
        git("init", "-q")
        git("remote", "add", "origin", "--", url)
        if commit:
            try:    # servers that allow fetching a commit by id (most do), else the ref with history
                git("fetch", "-q", "--depth", "1", "origin", commit)
            except BadRequest:
                git("fetch", "-q", "origin", ref)
            git("checkout", "-q", "--detach", commit)
        else:
            git("fetch", "-q", "--depth", "1", "origin", ref)
            git("checkout", "-q", "--detach", "FETCH_HEAD")
        head = git("rev-parse", "HEAD")
        log(f"Checked out commit {head}")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(os.path.join(target, ".git"), ignore_errors=True)
    return context_of(target), head
