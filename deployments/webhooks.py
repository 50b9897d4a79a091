"""Per-app git sources and the webhook that deploys a push to their branch.

An owner or admin configures an app's git source (repository URL, branch, optionally a token or a
deploy key); Berth makes a webhook secret for it, shown once (on creation and on rotation). The
forge posts pushes to `/api/v1/webhooks/apps/<app id>` without a token: the request is believed
only when it is signed with that secret. Accepted forms (the first header present decides):

    GitHub          X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>   X-GitHub-Delivery
    Gitea/Forgejo   X-Gitea-Signature / X-Forgejo-Signature: <hex HMAC-SHA256>     X-Gitea-Delivery
    GitLab          X-Gitlab-Token: <the secret itself>                             X-Gitlab-Event-UUID
    generic         X-Berth-Signature: sha256=<hex HMAC-SHA256>                     X-Berth-Delivery

The HMAC is over the body exactly as sent (the handler reads raw bytes; no validator parses it)
and every comparison is constant time. A wrong or missing signature, an unknown app and an app
without a git source all answer the same 401, so the route tells an outsider nothing.

A push to another branch is ignored (202 with the reason). A delivery runs once: its id and the
digest of its body are unique per app (models.webhooks.WebhookDelivery). The id header is not
covered by the signature, so the body digest is what stops a captured request replayed under a
new id; a forge's redelivery (same id) answers that it already ran.
"""
import dataclasses
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Mapping
from urllib.parse import parse_qs, urlsplit

import peewee

import apps
import domains
import eventlog
from core import config, sealing
from core.errors import BadRequest, NotFound, Unauthorized
from core.masking import MASK
from core.times import iso
from deployments import requests as deploy_requests
from deployments import sources
from models import database, utcnow
from models.webhooks import GitSource, WebhookDelivery

WEBHOOK_PATH = "/api/v1/webhooks/apps/{app_id}"
ZERO_SHA = "0" * 40                  # `after` of a push that deleted the branch
BRANCH = re.compile(r"^(?![/-])(?!.*\.\.)(?!.*//)[A-Za-z0-9._/-]{1,255}(?<![/.])$")
SSH_SCP = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+$")   # git@host:owner/repo.git
SIGNATURE_FAILED = "The webhook signature is missing or does not match"


# ---- signatures (pure) ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Push:
    provider: str            # github, gitlab, gitea, generic
    event: str               # the provider's event name ("push", "Push Hook", ...)
    delivery_id: str | None
    is_push: bool
    branch: str | None       # refs/heads/<branch> of the push; None for tags and other refs
    commit: str | None       # the pushed head (`after` / `checkout_sha`)


def _hmac_hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _prefixed_matches(value: str, secret: str, body: bytes) -> bool:
    scheme, _, digest = value.strip().partition("=")
    return scheme.lower() == "sha256" and hmac.compare_digest(digest.strip().lower().encode(),
                                                              _hmac_hex(secret, body).encode())


def _hex_matches(value: str, secret: str, body: bytes) -> bool:
    return hmac.compare_digest(value.strip().lower().encode(), _hmac_hex(secret, body).encode())


def provider_of(headers: Mapping[str, str]) -> str | None:
    """Which provider's form the request has (by its signature header), None when unsigned."""
    if "x-hub-signature-256" in headers:
        return "github"
    if "x-gitea-signature" in headers or "x-forgejo-signature" in headers:
        return "gitea"
    if "x-gitlab-token" in headers:
        return "gitlab"
    if "x-berth-signature" in headers:
        return "generic"
    return None


def signature_matches(headers: Mapping[str, str], body: bytes, secret: str) -> bool:
    """True when the request is signed with `secret` in the form its headers declare. `headers`
    must have lower-case names. A GitHub `X-Hub-Signature` (SHA-1) alone is not accepted."""
    provider = provider_of(headers)
    if not secret or provider is None:
        return False
    if provider == "github":
        return _prefixed_matches(headers["x-hub-signature-256"], secret, body)
    if provider == "gitea":
        value = headers.get("x-gitea-signature") or headers.get("x-forgejo-signature") or ""
        return _hex_matches(value, secret, body)
    if provider == "gitlab":
        return hmac.compare_digest(headers["x-gitlab-token"].encode(), secret.encode())
    return _prefixed_matches(headers["x-berth-signature"], secret, body)


def _payload(body: bytes, content_type: str) -> dict:
    """The JSON payload; GitHub's `application/x-www-form-urlencoded` form carries it in `payload`."""
    text = body.decode("utf-8")
    if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        text = (parse_qs(text).get("payload") or [""])[0]
    data = json.loads(text or "{}")
    if not isinstance(data, dict):
        raise ValueError("the payload is not a JSON object")
    return data


def parse_push(headers: Mapping[str, str], body: bytes) -> Push:
    """What a (signed) request says: provider, event, delivery id, branch and commit. Raises
    BadRequest when the body is not a JSON payload. `headers` must have lower-case names."""
    provider = provider_of(headers) or "generic"
    event, delivery = {
        "github": (headers.get("x-github-event", ""), headers.get("x-github-delivery")),
        "gitlab": (headers.get("x-gitlab-event", ""), headers.get("x-gitlab-event-uuid")),
        "gitea": (headers.get("x-gitea-event") or headers.get("x-forgejo-event") or "push",
                  headers.get("x-gitea-delivery") or headers.get("x-forgejo-delivery")),
        "generic": (headers.get("x-berth-event", "push"), headers.get("x-berth-delivery")),
    }[provider]
    is_push = event.strip().lower() in ("push", "push hook")
    try:
        data = _payload(body, headers.get("content-type", "application/json"))
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("is not a JSON push payload", "body") from None
    ref = data.get("ref") if isinstance(data.get("ref"), str) else ""
    branch = ref[len("refs/heads/"):] if ref.startswith("refs/heads/") else None
    commit = data.get("checkout_sha") or data.get("after") or data.get("commit")
    commit = commit if isinstance(commit, str) and re.fullmatch(r"[0-9a-fA-F]{7,64}", commit) else None
    return Push(provider=provider, event=event, delivery_id=(delivery or "").strip()[:128] or None,
                is_push=is_push, branch=branch, commit=commit.lower() if commit else None)


def sign(secret: str, body: bytes) -> str:
    """`sha256=<hex>`: the value of X-Hub-Signature-256 / X-Berth-Signature for `body`."""
    return "sha256=" + _hmac_hex(secret, body)


# ---- the git source of an app -----------------------------------------------------------------------

def _context(app_id: str, field: str) -> str:
    return f"git_source:{app_id}:{field}"


def _check_url(url: object) -> str:
    if not isinstance(url, str) or not url.strip() or len(url) > 2048 or any(c.isspace() for c in url.strip()):
        raise BadRequest("must be a git repository URL", "url")
    url = url.strip()
    if not sources.GIT_URL.match(url):
        raise BadRequest("must be an https://, http://, ssh:// or git:// URL (or user@host:path)", "url")
    if SSH_SCP.match(url):
        return url
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http", "ssh", "git") or not parts.hostname:
        # file:// and local paths would let an admin read any repository on the server
        raise BadRequest("must be an https://, http://, ssh:// or git:// URL (or user@host:path)", "url")
    if parts.password or (parts.username and parts.scheme in ("https", "http")):
        raise BadRequest("must not contain credentials: send the token in `token` (it is stored sealed)", "url")
    return url


def _check_branch(branch: object) -> str:
    if not isinstance(branch, str) or not BRANCH.match(branch) or branch.endswith(".lock"):
        raise BadRequest("must be a branch name", "branch")
    return branch


def _secret_field(body: dict, name: str, current: str | None, app_id: str, field: str) -> str | None:
    """The sealed value to store: MASK (or absent) keeps it, "" or null clears it."""
    if name not in body or body[name] == MASK:
        return current
    value = body[name]
    if value in (None, ""):
        return None
    if not isinstance(value, str) or len(value) > 16384:
        raise BadRequest("must be a string", name)
    return sealing.seal(value, _context(app_id, field))


def webhook_url(app_id: str, fallback_origin: str) -> str:
    """Where the forge posts: the dashboard's origin once one is served (the address the world
    reaches), else `fallback_origin` (the address this request came to)."""
    dashboard = domains.dashboard.vhost_spec()
    origin = f"https://{dashboard['fqdn']}" if dashboard else fallback_origin.rstrip("/")
    if dashboard:
        port = config.get().proxy_https_port
        origin += "" if port == 443 else f":{port}"
    return origin + WEBHOOK_PATH.format(app_id=app_id)


def to_api(source: GitSource, fallback_origin: str, secret: str | None = None) -> dict:
    """The git source as the API shows it: token and deploy key masked; the webhook secret only
    when it was just made (`secret`)."""
    answer = {"url": source.url, "branch": source.branch, "token": MASK if source.token else "",
              "deployKey": MASK if source.deploy_key else "",
              "webhookUrl": webhook_url(source.app_id, fallback_origin),
              "creationTime": iso(source.creation_time), "updateTime": iso(source.update_time)}
    if secret is not None:
        answer["webhookSecret"] = secret
    return answer


def get_source(app_id: str) -> GitSource:
    apps.get_app(app_id)   # 404 for an unknown app
    return GitSource.get_or_raise(NotFound("This app has no git source"), GitSource.app == app_id)


def set_source(actor: eventlog.Actor, app_id: str, body: dict) -> tuple[GitSource, str | None]:
    """Create or change the app's git source; returns it and the new webhook secret when one was
    made (creation, or `rotateSecret: true`), else None."""
    apps.get_app(app_id)
    with database.atomic():
        current = GitSource.get_or_none(GitSource.app == app_id)
        if current is None and "url" not in body:
            raise BadRequest("is required", "url")
        url = _check_url(body["url"]) if "url" in body else current.url
        branch = _check_branch(body.get("branch", current.branch if current else "main"))
        token = _secret_field(body, "token", current and current.token, app_id, "token")
        deploy_key = _secret_field(body, "deployKey", current and current.deploy_key, app_id, "deployKey")
        if token and deploy_key:
            raise BadRequest("give a token or a deploy key, not both", "token")
        if token and not url.startswith(("http://", "https://")):
            raise BadRequest("a token works with http(s) URLs only", "token")
        if deploy_key and url.startswith(("http://", "https://")):
            raise BadRequest("a deploy key works with ssh URLs only", "deployKey")
        secret = None
        if current is None or body.get("rotateSecret") is True:
            secret = secrets.token_hex(32)
        fields = {"url": url, "branch": branch, "token": token, "deploy_key": deploy_key, "update_time": utcnow()}
        if secret is not None:
            fields["webhook_secret"] = sealing.seal(secret, _context(app_id, "webhook"))
        if current is None:
            GitSource.create(app=app_id, **fields)
        else:
            GitSource.update(**fields).where(GitSource.app == app_id).execute()
    eventlog.record("app.git_source", actor, appId=app_id, url=url, branch=branch,
                    secretRotated=secret is not None and current is not None)
    return GitSource.get(GitSource.app == app_id), secret


def deploy_source(source: GitSource, commit: str | None) -> dict:
    """The `source` argument of deployments.requests.start_deploy for a push of `commit`."""
    return {"type": "git", "url": source.url, "ref": source.branch, "commit": commit,
            "token": sealing.unseal(source.token, _context(source.app_id, "token")) if source.token else None,
            "deployKey": (sealing.unseal(source.deploy_key, _context(source.app_id, "deployKey"))
                          if source.deploy_key else None)}


# ---- receiving a push -------------------------------------------------------------------------------

def receive(app_id: str, headers: Mapping[str, str], body: bytes, ip: str | None) -> tuple[dict, int]:
    """Check and act on one webhook request; returns (answer, status). `headers` with lower-case
    names; `body` the raw bytes as sent. Raises Unauthorized (nothing runs) unless it is signed."""
    source = GitSource.get_or_none(GitSource.app == app_id)
    secret = sealing.unseal(source.webhook_secret, _context(app_id, "webhook")) if source else None
    if not signature_matches(headers, body, secret or ""):
        raise Unauthorized(SIGNATURE_FAILED)
    push = parse_push(headers, body)
    if not push.is_push:
        return {"ignored": f"not a push event ({push.event or 'none'})"}, 202
    if push.branch != source.branch:
        return {"ignored": f"push to {push.branch or 'a ref that is not a branch'}, this app deploys "
                           f"{source.branch}"}, 202
    if not push.commit or push.commit == ZERO_SHA:
        return {"ignored": "the push has no new commit (branch deleted?)"}, 202
    digest = hashlib.sha256(body).hexdigest()
    delivery_id = push.delivery_id or "sha256:" + digest
    try:
        with database.atomic():
            delivery = WebhookDelivery.create(app=app_id, delivery_id=delivery_id, body_sha256=digest,
                                              provider=push.provider, commit=push.commit)
    except peewee.IntegrityError:
        earlier = WebhookDelivery.get_or_none(WebhookDelivery.app == app_id,
                                              (WebhookDelivery.delivery_id == delivery_id)
                                              | (WebhookDelivery.body_sha256 == digest))
        return {"alreadyRan": True, "deliveryId": earlier.delivery_id if earlier else delivery_id,
                "taskId": str(earlier.task_id) if earlier and earlier.task_id else None}, 200
    actor = eventlog.Actor(username=f"webhook:{push.provider}", ip=ip)
    try:
        task_id = deploy_requests.start_deploy(actor, app_id, deploy_source(source, push.commit))
    except Exception:
        delivery.delete_instance()   # not run: the forge's redelivery may try again
        raise
    WebhookDelivery.update(task_id=task_id).where(WebhookDelivery.id == delivery.id).execute()
    eventlog.record("app.webhook", actor, appId=app_id, provider=push.provider, deliveryId=delivery_id,
                    commit=push.commit, taskId=task_id)
    return {"taskId": str(task_id), "deliveryId": delivery_id, "commit": push.commit}, 202
