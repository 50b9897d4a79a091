"""Webhook signatures per provider and push parsing (deployments.webhooks, the pure part), and the
git source rules and delivery bookkeeping on a throw-away database."""
import hashlib
import hmac
import json

import pytest

from core.errors import BadRequest, Unauthorized
from deployments import webhooks

SECRET = "s3cret-" + "a" * 57
BODY = json.dumps({"ref": "refs/heads/main", "before": "1" * 40, "after": "ab" * 20}).encode()


def hexmac(secret, body):
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed(provider, body=BODY, secret=SECRET):
    mac = hexmac(secret, body)
    return {
        "github": {"x-hub-signature-256": "sha256=" + mac, "x-github-event": "push", "x-github-delivery": "d-1"},
        "gitlab": {"x-gitlab-token": secret, "x-gitlab-event": "Push Hook", "x-gitlab-event-uuid": "d-1"},
        "gitea": {"x-gitea-signature": mac, "x-gitea-event": "push", "x-gitea-delivery": "d-1"},
        "forgejo": {"x-forgejo-signature": mac, "x-forgejo-event": "push", "x-forgejo-delivery": "d-1"},
        "generic": {"x-berth-signature": "sha256=" + mac, "x-berth-delivery": "d-1"},
    }[provider]


PROVIDERS = ["github", "gitlab", "gitea", "forgejo", "generic"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_correct_signature_of_each_provider_is_accepted_and_parsed(provider):
    headers = signed(provider)
    assert webhooks.signature_matches(headers, BODY, SECRET)
    push = webhooks.parse_push(headers, BODY)
    assert (push.is_push, push.branch, push.commit, push.delivery_id) == (True, "main", "ab" * 20, "d-1")
    assert push.provider == {"forgejo": "gitea"}.get(provider, provider)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_signature_with_another_secret_is_refused(provider):
    assert not webhooks.signature_matches(signed(provider, secret="other"), BODY, SECRET)


@pytest.mark.parametrize("provider", [p for p in PROVIDERS if p != "gitlab"])
def test_push_body_tampered_after_signing_is_refused(provider):
    """GitLab's token is not a MAC over the body; every other form is."""
    tampered = BODY.replace(b"main", b"mainx")
    assert not webhooks.signature_matches(signed(provider), tampered, SECRET)


def test_body_re_encoded_as_json_no_longer_matches():
    """Why the handler must read the raw bytes: the same JSON serialised differently is not the
    signed body."""
    reencoded = json.dumps(json.loads(BODY), separators=(",", ":")).encode()
    assert reencoded != BODY
    assert not webhooks.signature_matches(signed("github"), reencoded, SECRET)


def test_missing_signature_and_empty_secret_are_refused():
    assert not webhooks.signature_matches({"x-github-event": "push"}, BODY, SECRET)
    assert not webhooks.signature_matches(signed("github"), BODY, "")
    assert not webhooks.signature_matches(signed("gitlab", secret=""), BODY, "")


def test_github_sha1_signature_alone_is_refused():
    sha1 = hmac.new(SECRET.encode(), BODY, hashlib.sha1).hexdigest()
    assert not webhooks.signature_matches({"x-hub-signature": "sha1=" + sha1}, BODY, SECRET)


def test_signature_with_wrong_scheme_or_truncated_digest_is_refused():
    mac = hexmac(SECRET, BODY)
    assert not webhooks.signature_matches({"x-hub-signature-256": "sha1=" + mac}, BODY, SECRET)
    assert not webhooks.signature_matches({"x-hub-signature-256": "sha256=" + mac[:-2]}, BODY, SECRET)
    assert not webhooks.signature_matches({"x-hub-signature-256": "sha256="}, BODY, SECRET)
    assert webhooks.signature_matches({"x-hub-signature-256": "sha256=" + mac.upper()}, BODY, SECRET)


def test_comparisons_are_constant_time(monkeypatch):
    """Every form compares with hmac.compare_digest (no early-exit ==)."""
    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(webhooks.hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    for provider in PROVIDERS:
        webhooks.signature_matches(signed(provider, secret="x"), BODY, SECRET)
    assert len(calls) == len(PROVIDERS)


def test_sign_makes_the_github_and_generic_header_value():
    assert webhooks.sign(SECRET, BODY) == "sha256=" + hexmac(SECRET, BODY)


def test_github_form_encoded_payload_is_read():
    from urllib.parse import urlencode
    body = urlencode({"payload": BODY.decode()}).encode()
    headers = {**signed("github", body), "content-type": "application/x-www-form-urlencoded"}
    assert webhooks.signature_matches(headers, body, SECRET)
    assert webhooks.parse_push(headers, body).branch == "main"


def test_other_events_tags_and_gitlab_checkout_sha():
    ping = webhooks.parse_push({**signed("github"), "x-github-event": "ping"}, b'{"zen": "x"}')
    assert not ping.is_push
    tag = webhooks.parse_push(signed("github"), json.dumps({"ref": "refs/tags/v1", "after": "c" * 40}).encode())
    assert tag.branch is None
    gitlab = webhooks.parse_push(signed("gitlab"), json.dumps(
        {"ref": "refs/heads/dev", "after": "1" * 40, "checkout_sha": "2" * 40}).encode())
    assert (gitlab.branch, gitlab.commit) == ("dev", "2" * 40)


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b"\xff\xfe"])
def test_payload_that_is_not_a_json_object_is_a_bad_request(body):
    with pytest.raises(BadRequest):
        webhooks.parse_push(signed("github", body), body)


# ---- on a database --------------------------------------------------------------------------------

@pytest.fixture
def app_id(db):
    from models.apps import App
    App.create(id="app-1", manifest={"id": "io.example"}, location="a", domain="example.com",
               installation_state="installed", run_state="running")
    return "app-1"


def _set(app_id, **body):
    return webhooks.set_source(webhooks.eventlog.SYSTEM, app_id, body)


@pytest.mark.parametrize("url", ["file:///etc", "/srv/repo.git", "ext::sh -c id", "https://user:pw@host/r.git",
                                 "https://tok@host/r.git", "-uhttps://x", ""])
def test_git_source_url_that_reads_local_files_or_holds_credentials_is_refused(app_id, url):
    with pytest.raises(BadRequest) as e:
        _set(app_id, url=url, branch="main")
    assert e.value.field == "url"


@pytest.mark.parametrize("branch", ["-x", "a..b", "a b", "/a", "a/", "x.lock", ""])
def test_bad_branch_names_are_refused(app_id, branch):
    with pytest.raises(BadRequest):
        _set(app_id, url="https://git.example.com/r.git", branch=branch)


def test_secrets_are_sealed_masked_and_kept_when_sent_back_masked(app_id):
    from core.masking import MASK
    from models.webhooks import GitSource
    source, secret = _set(app_id, url="https://git.example.com/r.git", branch="main", token="tok-123")
    assert secret and len(secret) == 64
    row = GitSource.get(GitSource.app == app_id)
    assert "tok-123" not in row.token and secret not in row.webhook_secret
    shown = webhooks.to_api(source, "http://h")
    assert shown["token"] == MASK and "webhookSecret" not in shown
    assert shown["webhookUrl"] == "http://h/api/v1/webhooks/apps/app-1"
    again, none = _set(app_id, token=MASK, branch="dev")
    assert none is None and webhooks.deploy_source(again, "f" * 40)["token"] == "tok-123"
    assert webhooks.deploy_source(again, "f" * 40)["ref"] == "dev"
    rotated, new = _set(app_id, rotateSecret=True)
    assert new and new != secret
    cleared, _ = _set(app_id, token="")
    assert webhooks.deploy_source(cleared, None)["token"] is None


def test_receive_refuses_unknown_app_and_wrong_signature_alike(app_id):
    with pytest.raises(Unauthorized):
        webhooks.receive("no-such-app", signed("github"), BODY, "1.2.3.4")
    _set(app_id, url="https://git.example.com/r.git", branch="main")
    with pytest.raises(Unauthorized):
        webhooks.receive(app_id, signed("github"), BODY, "1.2.3.4")   # signed with another secret


def test_receive_ignores_other_branches_and_non_push_events(app_id):
    _, secret = _set(app_id, url="https://git.example.com/r.git", branch="release")
    answer, status = webhooks.receive(app_id, signed("github", secret=secret), BODY, None)
    assert status == 202 and "main" in answer["ignored"] and "release" in answer["ignored"]
    ping = {**signed("github", secret=secret), "x-github-event": "ping"}
    assert webhooks.receive(app_id, ping, BODY, None)[0]["ignored"].startswith("not a push")


def test_captured_webhook_replayed_under_a_new_delivery_id_runs_nothing(app_id):
    """The real deploy request: a deployment row and a queued task (no runner here)."""
    from models.deployments import Deployment
    from models.tasks import Task
    from models.webhooks import WebhookDelivery
    _, secret = _set(app_id, url="https://git.example.com/r.git", branch="main", token="tok-1")
    headers = signed("github", secret=secret)
    first, status = webhooks.receive(app_id, headers, BODY, "1.2.3.4")
    assert status == 202 and first["commit"] == "ab" * 20
    deployment = Deployment.get(Deployment.task_id == int(first["taskId"]))
    assert (deployment.commit or deployment.source.get("commit")) == "ab" * 20
    assert "tok-1" not in json.dumps(deployment.source)
    again, status = webhooks.receive(app_id, headers, BODY, None)
    assert (status, again["alreadyRan"], again["taskId"]) == (200, True, first["taskId"])
    renamed = {**headers, "x-github-delivery": "d-2"}   # the id header is not signed
    assert webhooks.receive(app_id, renamed, BODY, None)[0]["alreadyRan"] is True
    assert len([d for d in Deployment.select() if d.source.get("type") == "git"]) == 1
    assert Task.select().count() == 1
    assert WebhookDelivery.select().count() == 1


def test_delivery_whose_deploy_is_refused_is_not_remembered(app_id):
    from core.errors import Conflict
    from models.apps import App
    from models.webhooks import WebhookDelivery
    _, secret = _set(app_id, url="https://git.example.com/r.git", branch="main")
    App.update(installation_state="pending_uninstall").where(App.id == app_id).execute()
    with pytest.raises(Conflict):
        webhooks.receive(app_id, signed("github", secret=secret), BODY, None)
    assert WebhookDelivery.select().count() == 0
