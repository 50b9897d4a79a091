"""deployments.checkout.clone against a real `git daemon` on a free 127.0.0.1 port (git://): a
branch, a tag and a commit are checked out without their .git, and the commit id is reported."""
import os
import shutil
import socket
import subprocess
import time

import pytest

from core.errors import BadRequest

GIT = shutil.which("git")
pytestmark = pytest.mark.skipif(GIT is None, reason="git is not installed")


def _git(cwd, *args):
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run([GIT, *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("git")
    work = root / "work"
    work.mkdir()
    _git(work, "init", "-q", "-b", "main")
    (work / "Dockerfile").write_text("FROM scratch\n")
    (work / "version").write_text("1")
    _git(work, "add", ".")
    _git(work, "commit", "-q", "-m", "one")
    first = _git(work, "rev-parse", "HEAD")
    _git(work, "tag", "v1")
    (work / "version").write_text("2")
    _git(work, "commit", "-q", "-am", "two")
    second = _git(work, "rev-parse", "HEAD")
    _git(root, "clone", "-q", "--bare", str(work), str(root / "repo.git"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    daemon = subprocess.Popen([GIT, "daemon", "--reuseaddr", "--export-all", f"--base-path={root}",
                               "--listen=127.0.0.1", f"--port={port}", str(root)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    try:
        yield {"url": f"git://127.0.0.1:{port}/repo.git", "first": first, "second": second}
    finally:
        daemon.terminate()
        daemon.wait(10)


def _clone(tmp_path, source):
    from deployments import checkout
    dest = tmp_path / os.urandom(4).hex()
    dest.mkdir()
    lines = []
    context, commit = checkout.clone(source, str(dest), lines.append)
    return context, commit, lines


@pytest.mark.parametrize("ref,version,which", [("main", "2", "second"), ("v1", "1", "first")])
def test_clone_of_a_branch_or_tag(served, tmp_path, ref, version, which):
    context, commit, lines = _clone(tmp_path, {"url": served["url"], "ref": ref})
    assert open(os.path.join(context, "version")).read() == version
    assert commit == served[which]
    assert not os.path.exists(os.path.join(context, ".git"))     # the build context carries no git config
    assert any(commit in line for line in lines)


def test_clone_of_a_commit(served, tmp_path):
    context, commit, _ = _clone(tmp_path, {"url": served["url"], "ref": "main", "commit": served["first"]})
    assert commit == served["first"] and open(os.path.join(context, "version")).read() == "1"


def test_clone_failure_names_git_and_leaves_no_secret(served, tmp_path):
    from deployments import checkout
    dest = tmp_path / "x"
    dest.mkdir()
    with pytest.raises(BadRequest) as failure:
        checkout.clone({"url": served["url"] + "-missing", "ref": "main"}, str(dest), lambda line: None,
                       deploy_key="-----BEGIN OPENSSH PRIVATE KEY-----\nsecretkeymaterial\n")
    assert "git fetch failed" in failure.value.message and "secretkeymaterial" not in failure.value.message
    assert [p for p in os.listdir(dest) if p.startswith("git-")] == []      # the key's folder is gone
