"""Git sources and push webhooks over HTTP against one Berth server with the real engine and nginx,
and a local git server (tests/support/git_server.py: `git daemon` on a private port).

An app is installed from the busybox test image; its git source points at a repository the test
serves; a signed GitHub-style push webhook builds the pushed commit (FROM scratch + static busybox,
no registry) and the new version is seen live through the proxy. Wrong signatures, other branches
and replays are checked to start nothing.
"""
import hashlib
import hmac
import json
import uuid
from urllib.parse import urlencode

import pytest
import requests

from core.masking import MASK
from support import git_server
from support.apps_env import DOMAIN, _berth, unique
from support.harness import require


@pytest.fixture(scope="module")
def berth(parts, tmp_path_factory):
    env = _berth(parts, tmp_path_factory)
    try:
        yield env.start()
    finally:
        env.close()


@pytest.fixture(scope="module")
def git():
    require("git with git-daemon (Debian package git)", git_server.available())
    server = git_server.GitServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def app(berth, git):
    """An installed app, its repository (v1 on main) and its git source: (app id, fqdn, secret)."""
    location = unique("hook")
    app = berth.install(location)
    git.create(location)
    git.commit(location, git_server.app_source_files("v1"), "v1")
    r = berth.api.post(f"/apps/{app['id']}/git_source", json={"url": git.url(location), "branch": "main"})
    assert r.status_code == 200, r.text
    return app["id"], app["fqdn"], r.json()["webhookSecret"], location


def _push_body(commit, branch="main"):
    return json.dumps({"ref": f"refs/heads/{branch}", "before": "0" * 39 + "1", "after": commit,
                       "repository": {"full_name": "test/app"}, "pusher": {"name": "test"}},
                      indent=2).encode()   # pretty-printed: a re-encoded body would not match


def _post(berth, app_id, body, secret, delivery=None, event="push", content_type="application/json"):
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return requests.post(f"{berth.server.api}/webhooks/apps/{app_id}", data=body, timeout=10, headers={
        "Content-Type": content_type, "X-GitHub-Event": event, "X-Hub-Signature-256": signature,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4())})


def _deployments(berth, app_id):
    r = berth.api.get(f"/apps/{app_id}/deployments")
    if r.status_code == 501:
        return None
    assert r.status_code == 200, r.text
    return r.json()["deployments"]


def test_git_source_answer_masks_the_token_and_shows_the_secret_once(berth, app):
    app_id, _, secret, location = app
    assert len(secret) == 64
    shown = berth.api.get(f"/apps/{app_id}/git_source").json()
    assert "webhookSecret" not in shown and shown["branch"] == "main"
    assert shown["webhookUrl"].endswith(f"/api/v1/webhooks/apps/{app_id}")
    r = berth.api.post(f"/apps/{app_id}/git_source", json={"url": shown["url"].replace("git://", "https://"),
                                                           "token": "tok-secret"})
    assert r.status_code == 200 and r.json()["token"] == MASK and "webhookSecret" not in r.json()
    assert "tok-secret" not in berth.api.get(f"/apps/{app_id}/git_source").text
    r = berth.api.post(f"/apps/{app_id}/git_source", json={"url": shown["url"], "token": ""})
    assert r.status_code == 200 and r.json()["token"] == ""
    assert berth.api.post(f"/apps/{app_id}/git_source", json={"url": "file:///etc"}).status_code == 400


def test_git_source_needs_an_admin_token(berth, app):
    app_id = app[0]
    assert requests.get(f"{berth.server.api}/apps/{app_id}/git_source", timeout=10).status_code == 401


def test_webhook_with_wrong_or_missing_signature_is_refused_and_starts_nothing(berth, git, app):
    app_id, _, secret, location = app
    before = _deployments(berth, app_id)
    body = _push_body(git.head(location))
    assert _post(berth, app_id, body, "not-the-secret").status_code == 401
    unsigned = requests.post(f"{berth.server.api}/webhooks/apps/{app_id}", data=body, timeout=10,
                             headers={"Content-Type": "application/json", "X-GitHub-Event": "push"})
    assert unsigned.status_code == 401
    assert _post(berth, "no-such-app", body, secret).status_code == 401
    assert _deployments(berth, app_id) == before


def test_push_to_another_branch_is_ignored(berth, git, app):
    app_id, _, secret, location = app
    before = _deployments(berth, app_id)
    sha = git.commit(location, {"rootfs/www/index.html": b"feature branch"}, "feature", branch="feature")
    r = _post(berth, app_id, _push_body(sha, branch="feature"), secret)
    assert r.status_code == 202 and "feature" in r.json()["ignored"], r.text
    # GitHub's other content type: the JSON in a `payload` form field, signed as sent
    form = urlencode({"payload": _push_body(sha, branch="feature").decode()}).encode()
    r = _post(berth, app_id, form, secret, content_type="application/x-www-form-urlencoded")
    assert r.status_code == 202 and "feature" in r.json()["ignored"], r.text
    assert _deployments(berth, app_id) == before


@pytest.mark.parametrize("provider", ["gitlab", "gitea", "forgejo", "generic"])
def test_other_providers_signatures_are_checked_over_http(berth, git, app, provider):
    """Signed right: accepted (a push to another branch, so only the answer changes); signed with
    another secret: 401."""
    app_id, _, secret, location = app
    body = _push_body("c" * 40, branch="elsewhere")
    for key, expected in ((secret, 202), ("wrong", 401)):
        mac = hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
        headers = {"gitlab": {"X-Gitlab-Token": key, "X-Gitlab-Event": "Push Hook"},
                   "gitea": {"X-Gitea-Signature": mac, "X-Gitea-Event": "push"},
                   "forgejo": {"X-Forgejo-Signature": mac, "X-Forgejo-Event": "push"},
                   "generic": {"X-Berth-Signature": "sha256=" + mac}}[provider]
        r = requests.post(f"{berth.server.api}/webhooks/apps/{app_id}", data=body, timeout=10,
                          headers={"Content-Type": "application/json", **headers})
        assert r.status_code == expected, (key, r.text)
        if expected == 202:
            assert "elsewhere" in r.json()["ignored"]


def test_signed_push_deploys_the_commit_once_and_it_goes_live(berth, git, app):
    app_id, fqdn, secret, location = app
    files = git_server.app_source_files("v2-from-git")
    sha = git.commit(location, files, "v2", branch="main")
    body = _push_body(sha)
    r = _post(berth, app_id, body, secret, delivery="delivery-v2")
    assert r.status_code == 202, r.text
    assert r.json()["commit"] == sha
    task_id = r.json()["taskId"]
    # the same delivery again, and the same signed body under another delivery id: nothing new
    again = _post(berth, app_id, body, secret, delivery="delivery-v2")
    assert again.status_code == 200 and again.json()["alreadyRan"] is True and again.json()["taskId"] == task_id
    assert _post(berth, app_id, body, secret).json()["alreadyRan"] is True
    deployments = _deployments(berth, app_id)
    if deployments is not None:
        mine = [d for d in deployments if d.get("taskId") == task_id]
        of_commit = [d for d in deployments if sha in (d.get("commit"), (d.get("source") or {}).get("commit"))]
        assert len(mine) == 1 and len(of_commit) == 1, deployments
    task = berth.wait_task(task_id, timeout=240)
    assert task["success"], (task, berth.task_log(task_id)[-3000:])
    berth.wait_page(fqdn, "served v2", lambda status, page: status == 200 and "v2-from-git" in page, timeout=30)
    deployments = _deployments(berth, app_id)
    if deployments is not None:
        [mine] = [d for d in deployments if d.get("taskId") == task_id]
        assert mine["state"] == "live" and mine["commit"] == sha, mine
    assert DOMAIN in fqdn
