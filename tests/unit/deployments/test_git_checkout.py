"""deployments.checkout.clone against a real `git daemon` on a free 127.0.0.1 port (git://): a
branch, a tag and a commit are checked out without their .git, and the commit id is reported."""
import os

import pytest

from core.errors import BadRequest
from support import git_server
from support.harness import require


@pytest.fixture(scope="module")
def served():
    require("git with git daemon", git_server.available())
    server = git_server.GitServer().start()
    try:
        server.create("repo")
        first = server.commit("repo", {"Dockerfile": b"FROM scratch\n", "version": b"1"}, "one")
        server.tag("repo", "v1")
        second = server.commit("repo", {"version": b"2"}, "two")
        yield {"url": server.url("repo"), "first": first, "second": second}
    finally:
        server.stop()


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
