"""A throw-away git server for the tests: bare repositories served by `git daemon` (git://, with
push enabled) on a free 127.0.0.1 port, and a work tree per repository to commit and push from.

    server = GitServer().start()
    url = server.create("app")                                 # git://127.0.0.1:<port>/app.git
    sha = server.commit("app", app_source_files("v1"), "first")   # committed and pushed to main
    sha = server.commit("app", {"rootfs/www/index.html": b"v2"}, "second", branch="main")
    server.stop()

app_source_files() is a build context like tests/support/images.py makes: a Dockerfile FROM scratch
with Debian's static busybox serving /www on port 8000 (a /health page once up), so a build needs
no registry.
"""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

from support import images
from support.harness import end_process, free_port

GIT_ENV = {"GIT_AUTHOR_NAME": "Berth Test", "GIT_AUTHOR_EMAIL": "test@example.test",
           "GIT_COMMITTER_NAME": "Berth Test", "GIT_COMMITTER_EMAIL": "test@example.test",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"}


def available():
    return shutil.which("git") is not None and os.path.exists("/usr/lib/git-core/git-daemon")


def app_source_files(marker="v1", port=images.PORT, extra=None):
    """{path: bytes | ("symlink", target)} of an app source whose index page contains `marker`,
    with a CloudronManifest.json (httpPort, healthCheckPath /health)."""
    index = f"<!doctype html><title>berth test</title><p>{images.INDEX_MARKER} {marker}</p>\n".encode()
    files, _ = images._context(port, False, {"www/index.html": index, **(extra or {})})
    manifest = {"manifestVersion": 2, "id": "io.berth.test.source", "version": "1.0.0",
                "title": "Berth test app (from source)", "httpPort": port,
                "healthCheckPath": images.HEALTH_PATH}
    files["CloudronManifest.json"] = json.dumps(manifest, indent=2).encode()
    return files


def write_files(root, files):
    """Write a {path: bytes | ("symlink", target)} tree under `root` (executables as images.py does)."""
    for path, data in files.items():
        full = os.path.join(root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        if os.path.lexists(full):
            os.unlink(full)
        if isinstance(data, tuple):
            os.symlink(data[1], full)
            continue
        with open(full, "wb") as f:
            f.write(data)
        executable = path.startswith(("rootfs/bin/", "rootfs/www/cgi-bin/")) or path.endswith(".sh")
        os.chmod(full, 0o755 if executable else 0o644)


class GitServer:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="berth-git-")
        self.repos = os.path.join(self.dir, "repos")
        self.trees = os.path.join(self.dir, "trees")
        os.makedirs(self.repos)
        os.makedirs(self.trees)
        self.port = free_port()
        self.process = None

    def _git(self, *argv, cwd=None):
        r = subprocess.run(["git", *argv], cwd=cwd, env={**os.environ, **GIT_ENV}, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"git {' '.join(argv)} failed: {r.stderr.strip()}")
        return r.stdout.strip()

    def start(self, timeout=10):
        self.log = open(os.path.join(self.dir, "daemon.log"), "wb")
        self.process = subprocess.Popen(
            ["git", "daemon", "--reuseaddr", "--export-all", "--enable=receive-pack", "--listen=127.0.0.1",
             f"--port={self.port}", f"--base-path={self.repos}", self.repos],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("git daemon did not start") from None
                time.sleep(0.05)

    def url(self, name):
        return f"git://127.0.0.1:{self.port}/{name}.git"

    def create(self, name, branch="main"):
        """A new bare repository `name` (default branch `branch`) and its work tree; its URL."""
        self._git("init", "--bare", "-q", f"--initial-branch={branch}", os.path.join(self.repos, name + ".git"))
        tree = os.path.join(self.trees, name)
        self._git("init", "-q", f"--initial-branch={branch}", tree)
        self._git("remote", "add", "origin", self.url(name), cwd=tree)
        return self.url(name)

    def commit(self, name, files, message="change", branch="main", remove=()):
        """Write `files` into the work tree on `branch`, commit and push it through the daemon; the sha."""
        tree = os.path.join(self.trees, name)
        current = self._git("symbolic-ref", "--short", "HEAD", cwd=tree)
        if current != branch:
            exists = self._git("branch", "--list", branch, cwd=tree)
            has_commits = subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=tree,
                                         capture_output=True).returncode == 0
            if exists:
                self._git("checkout", "-q", branch, cwd=tree)
            elif has_commits:
                self._git("checkout", "-q", "-b", branch, cwd=tree)
            else:
                self._git("symbolic-ref", "HEAD", f"refs/heads/{branch}", cwd=tree)
        write_files(tree, files)
        for path in remove:
            self._git("rm", "-q", path, cwd=tree)
        self._git("add", "-A", cwd=tree)
        self._git("commit", "-q", "--allow-empty", "-m", message, cwd=tree)
        self._git("push", "-q", "origin", f"{branch}:{branch}", cwd=tree)
        return self._git("rev-parse", "HEAD", cwd=tree)

    def tag(self, name, tag):
        """Tag the work tree's HEAD as `tag` and push the tag through the daemon."""
        tree = os.path.join(self.trees, name)
        self._git("tag", tag, cwd=tree)
        self._git("push", "-q", "origin", f"refs/tags/{tag}", cwd=tree)

    def head(self, name, branch="main"):
        return self._git("--git-dir", os.path.join(self.repos, name + ".git"), "rev-parse", branch)

    def stop(self):
        end_process(self.process)
        if getattr(self, "log", None):
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
