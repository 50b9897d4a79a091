"""Deploy and rollback requests: check, record the deployment (state `building`), queue the task.

The work runs in an app task (body `deploy.build`, deployments/task_bodies.py), so it waits for
any other task of the app and the app's tasks wait for it. A git token or deploy key goes to the
task sealed with the at-rest key (core.sealing) and never into the deployment row.
"""
import apps
import eventlog
import tasks
from containers import image_builds
from core import sealing
from core.errors import BadRequest, Conflict
from deployments import sources, store

# A build may take long; a wedged one still ends (the build itself has its own, shorter limit).
TASK_TIMEOUT = 3 * 3600


def _check_app(app_id: str):
    app = apps.get_app(app_id)
    if app.installation_state == "pending_uninstall":
        raise Conflict("App is being uninstalled")
    if app.installation_state == "error":
        raise Conflict(f"App is in error state ({(app.error or {}).get('message', 'unknown')}); repair it first")
    if app.debug_mode:
        # its container runs the debug command, not the app: no health check could pass
        raise Conflict("App is in debug mode; leave it first")
    return app


def _secret_context(deployment_id: int, field: str) -> str:
    return f"deployment:{deployment_id}:{field}"


def unseal_secret(deployment_id: int, field: str, sealed: str | None) -> str | None:
    """The token or deploy key the request gave, in the task (None when none was given)."""
    return sealing.unseal(sealed, _secret_context(deployment_id, field)) if sealed else None


def _queue(actor, app, deployment, args, action, event):
    try:
        task_id = tasks.start("app", "deploy.build", {"app_id": app.id, "deployment_id": deployment.id, **args},
                              app_id=app.id, timeout=TASK_TIMEOUT)
    except Exception as exc:   # no task will ever run it: the row must not stay `building`
        store.set_state(deployment.id, "failed", reason=f"could not queue the task: {exc}")
        raise
    store.update(deployment.id, task_id=task_id)
    eventlog.record(action, actor, appId=app.id, taskId=str(task_id), deploymentId=str(deployment.id), **event)
    return task_id


def _baseline(app) -> None:
    """Before an app's first deployment, what it runs since its install (or last update) is
    recorded as deployment 1, `live`, so that a rollback can go back to it too."""
    if store.list_for_app(app.id):
        return
    row = store.create(app.id, {"type": "install"}, None, image=app.manifest.get("dockerImage"), manifest=app.manifest)
    store.set_state(row.id, "live")


def start_deploy(actor: eventlog.Actor, app_id: str, source: dict, build_args: dict | None = None) -> int:
    """Record a deployment of `source` for the app (state `building`) and queue its task; the
    task id. `source`: {type: tarball, path} (the task removes the file once unpacked when it lies
    in Berth's upload folder), {type: git, url, ref, commit, token, deployKey} or {type: image, image}."""
    app = _check_app(app_id)
    source = sources.check(source)
    build_args = sources.check_build_args(build_args)
    _baseline(app)
    deployment = store.create(app.id, source, actor.source())
    secrets = {f"sealed_{k}": sealing.seal(source[k], _secret_context(deployment.id, k))
               for k in store.SECRET_FIELDS if source.get(k)}
    plain = {k: v for k, v in source.items() if k not in store.SECRET_FIELDS}
    return _queue(actor, app, deployment, {"source": plain, "build_args": build_args, **secrets},
                  "app.deploy", {"source": store.masked(source)})


def rollback(actor: eventlog.Actor, app_id: str, deployment_id: str | int) -> int:
    """Deploy again the image and manifest of an earlier deployment that went live (state `live`:
    the newest live one is what serves, older ones are what it replaced); the task id."""
    app = _check_app(app_id)
    earlier = store.get(app.id, deployment_id)
    if earlier.state != "live" or not earlier.image or not earlier.manifest:
        raise BadRequest("only a deployment that was live can be rolled back to", "deploymentId")
    if earlier.image.startswith(store.IMAGE_REPOSITORY + "/") and image_builds.image_info(earlier.image) is None:
        # Image hygiene keeps the newest BERTH_KEEP_BUILDS builds of an app: older ones are gone.
        raise Conflict(f"The image of deployment {earlier.id} ({earlier.image}) has been removed "
                       "(image hygiene keeps the newest builds): deploy its source again")
    deployment = store.create(app.id, {"type": "rollback", "deploymentId": str(earlier.id), "image": earlier.image},
                              actor.source(), rollback_of=earlier.id, image=earlier.image, manifest=earlier.manifest)
    store.update(deployment.id, commit=earlier.commit)
    return _queue(actor, app, deployment, {"source": {"type": "rollback"}}, "app.rollback",
                  {"to": str(earlier.id)})

