"""The deploy task (tasks.registry `deploy.build`): get the source, build it, roll it out.

A failure while fetching or building marks the deployment `failed` and leaves the app as it was
(its row, container and vhost are not touched before the rollout). During the rollout the app
stays `installed` (it serves all along) with the task as its `taskId`; the new version failing its
health check marks the deployment `rolled-back` (deployments.rollout), the old version serving on.
The task itself fails in both cases, with the reason as its error.
"""
import json
import os
import shutil

import apps
import containers
import eventlog
from apps import manifests, task_steps
from containers import image_builds
from core import data_paths
from core.errors import BadRequest
from deployments import checkout, requests, rollout, store
from models import utcnow
from models.apps import App
from tasks.context import TaskContext

MANIFEST_FILE = "CloudronManifest.json"
MANIFEST_MAX_BYTES = 1024 * 1024


class DeployFailed(Exception):
    pass


def _read_manifest(context_dir: str) -> dict | None:
    path = os.path.join(context_dir, MANIFEST_FILE)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)     # a symlink in the source is not followed
    except FileNotFoundError:
        return None
    except OSError as e:
        raise BadRequest(f"{MANIFEST_FILE} cannot be read: {e.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        raw = f.read(MANIFEST_MAX_BYTES + 1)
    if len(raw) > MANIFEST_MAX_BYTES:
        raise BadRequest(f"{MANIFEST_FILE} is larger than {MANIFEST_MAX_BYTES} bytes")
    try:
        return json.loads(raw)
    except ValueError as e:
        raise BadRequest(f"{MANIFEST_FILE} is not JSON: {e}") from None


def _fetch(task, deployment, source, work, secrets):
    """(build context folder, commit or None)."""
    if source["type"] == "tarball":
        task.progress(5, "Unpacking the source tarball")
        try:
            return checkout.unpack_tarball(source["path"], work), None
        finally:
            _drop_upload(source["path"])
    task.progress(5, "Fetching the git repository")
    return checkout.clone(source, work, task.log, token=secrets.get("token"), deploy_key=secrets.get("deployKey"))


def _drop_upload(path):
    uploads = os.path.realpath(data_paths.deploy_uploads())
    if os.path.dirname(os.path.realpath(path)) == uploads:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _cache_images(app_id, number):
    """Earlier builds of the app, newest first: their layers serve as the build cache."""
    return [d.image for d in store.list_for_app(app_id)
            if d.number < number and d.image and d.image.startswith(store.IMAGE_REPOSITORY + "/")][:2]


def _build(task, app, deployment, source, build_args, secrets):
    """(image, manifest, commit) of a tarball or git source."""
    work = os.path.join(data_paths.deploy_work(), str(deployment.id))
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work, mode=0o700)
    try:
        context, commit = _fetch(task, deployment, source, work, secrets)
        if commit:
            store.update(deployment.id, commit=commit)
        found = _read_manifest(context)
        base = found if found is not None else app.manifest
        task.log(f"Manifest: {MANIFEST_FILE} of the source" if found is not None
                 else f"Manifest: the app's current one ({MANIFEST_FILE} not in the source)")
        tag = store.build_tag(app.id, deployment.number)
        manifest = manifests.validate({**base, "dockerImage": tag}, MANIFEST_FILE if found is not None else "manifest")
        task.progress(15, f"Building {tag}")
        image_builds.build(context, tag, app_id=app.id, deployment_id=deployment.id, build_args=build_args,
                           cache_from=_cache_images(app.id, deployment.number), log=task.log)
        task.log(f"Built {tag}")
        return tag, manifest, commit
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _image(task, app, deployment, source):
    """(image, manifest, commit) of an image or rollback source."""
    if source["type"] == "rollback":
        image, manifest = deployment.image, deployment.manifest
        if not containers.image_exists(image):
            raise DeployFailed(f"The image {image} of that deployment is no longer on this server")
        task.log(f"Rolling back to {image}")
        return image, manifest, deployment.commit
    image = source["image"]
    task.progress(10, f"Getting image {image}")
    task_steps.ensure_image(task, image)
    return image, manifests.validate({**app.manifest, "dockerImage": image}), None


def _mark_app(app, task_id, busy):
    """The app row names the deploy task while the rollout runs. Its state stays `installed` when
    the new version starts beside the old one: the app serves all along, and a pending state would
    have the start-up reconciliation put the "being installed" page in front of it. An app with
    fixed ports is down while its old container is stopped: `pending_update` then, which also keeps
    the health check from starting the stopped container again meanwhile."""
    state = "pending_update" if app.port_bindings else "installed"
    if busy:
        App.update(task_id=task_id, installation_state=state, ts=utcnow()).where(
            (App.id == app.id) & (App.task_id.is_null(True) | (App.task_id <= task_id))).execute()
        return
    # a request queued meanwhile has recorded its own state and task: those are left
    App.update(task_id=None, installation_state="installed", ts=utcnow()).where(
        (App.id == app.id) & (App.task_id == task_id)).execute()


def build(task: TaskContext, app_id: str, deployment_id: int, source: dict, build_args: dict | None = None,
          sealed_token: str | None = None, sealed_deployKey: str | None = None, **_: object) -> dict:  # noqa: N803
    deployment = store.by_id(deployment_id)
    app = apps.get_app(app_id)
    secrets = {"token": requests.unseal_secret(deployment_id, "token", sealed_token),
               "deployKey": requests.unseal_secret(deployment_id, "deployKey", sealed_deployKey)}
    try:
        if source["type"] in ("tarball", "git"):
            image, manifest, commit = _build(task, app, deployment, source, build_args or {}, secrets)
        else:
            image, manifest, commit = _image(task, app, deployment, source)
    except Exception as exc:
        reason = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        store.set_state(deployment.id, "failed", reason=reason)
        eventlog.record("app.deploy.failed", eventlog.SYSTEM, appId=app.id, taskId=str(task.id), reason=reason)
        raise DeployFailed(reason) from None
    store.update(deployment.id, image=image, manifest=manifest, manifest_version=manifest.get("version"),
                 commit=commit)
    store.set_state(deployment.id, "deploying")
    task.progress(40, f"Deploying {image}")
    _mark_app(app, task.id, busy=True)
    try:
        rollout.roll_out(task, apps.get_app(app.id), manifest)
    except rollout.RolledBack as exc:
        store.set_state(deployment.id, "rolled-back", reason=exc.reason)
        rollout.notify_rolled_back(app, deployment.number, exc.reason, task.id)
        raise DeployFailed(f"Rolled back: {exc.reason}") from None
    except Exception as exc:
        store.set_state(deployment.id, "failed", reason=str(exc) or type(exc).__name__)
        raise
    finally:
        _mark_app(app, task.id, busy=False)
    store.set_state(deployment.id, "live")
    eventlog.record("app.deploy.live", eventlog.SYSTEM, appId=app.id, taskId=str(task.id),
                    deploymentId=str(deployment.id), image=image)
    task.progress(100, f"Deployment #{deployment.number} is live")
    return {"deploymentId": str(deployment.id), "state": "live", "image": image}
