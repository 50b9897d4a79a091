"""Image hygiene: a schedule removing the images Berth built that no deployment needs.

What stays, whatever else is true:
- the newest BERTH_KEEP_BUILDS builds of each app (default 3; by deployment, newest first), so a
  rollback to a recent build needs no rebuild;
- every image an app's deployments need (deployments.store.images_in_use: the live one and any
  being built or deployed);
- every image any container on the engine was created from, in any state, Berth's or not;
- every image without Berth's build label and this instance's label (containers.image_cleanup
  lists no other; the engine refuses to remove an image in use as well: removal is never forced).
Images of apps that are no longer installed are needed by no deployment and go.

The schedule runs hourly (action `deployments.image_hygiene`, registered at start-up). The action
works in the scheduler's thread: listing and removing images are quick engine calls.
"""
import logging

from containers import image_cleanup
from containers.image_cleanup import BuiltImage
from core import config
from deployments import store
from models.apps import App
from tasks import schedules

log = logging.getLogger("berth.deployments")

SCHEDULE = "image-hygiene"
PATTERN = "0 17 * * * *"          # hourly, off the full hour other schedules like
ACTION = "deployments.image_hygiene"


def register() -> None:
    """Install the hourly schedule (a changed pattern is kept: tasks.schedules.ensure)."""
    schedules.ensure(SCHEDULE, PATTERN, ACTION)


def choose(images: list[BuiltImage], keep: int, needed: dict[str, set[str]], container_images: set[str],
           installed: set[str]) -> list[BuiltImage]:
    """The images to remove (pure). `needed`: app id -> image references (tags or ids) its
    deployments need; `container_images`: image ids containers use; `installed`: app ids."""
    by_app: dict[str, list[BuiltImage]] = {}
    for image in images:
        by_app.setdefault(image.app_id, []).append(image)
    doomed = []
    for app_id, own in by_app.items():
        own = sorted(own, key=lambda i: (i.deployment or 0, i.created), reverse=True)
        kept = own[:max(keep, 0)] if app_id in installed and app_id else []
        wanted = needed.get(app_id, set())
        for image in own:
            if image in kept or image.id in container_images:
                continue
            if image.id in wanted or any(tag in wanted for tag in image.tags):
                continue
            doomed.append(image)
    return doomed


def run(fire_time: float | None = None) -> dict:
    """The schedule's action: remove what `choose` picks; {"removed": [...], "kept": n, "failed": {...}}."""
    images = image_cleanup.built_images()
    if not images:
        return {"removed": [], "kept": 0, "failed": {}}
    installed = {row.id for row in App.select(App.id)}
    needed = {app_id: store.images_in_use(app_id) for app_id in {i.app_id for i in images} if app_id in installed}
    # Containers are listed after the images: a container created in between is seen.
    doomed = choose(images, config.get().keep_builds, needed, image_cleanup.images_of_containers(), installed)
    removed, failed = [], {}
    for image in doomed:
        why = image_cleanup.remove(image)
        name = image.tags[0] if image.tags else image.id
        if why is None:
            removed.append(name)
        else:
            failed[name] = why
            log.warning("image hygiene: %s not removed: %s", name, why)
    if removed:
        log.info("image hygiene removed %d image(s): %s", len(removed), ", ".join(removed))
    return {"removed": removed, "kept": len(images) - len(removed), "failed": failed}
