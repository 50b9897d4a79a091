"""The engine's side of the image hygiene (deployments/hygiene.py decides what goes).

Only images labelled `berth.build=true` AND this instance's `berth.instance` are ever listed here,
so an image Berth did not build (pulled, built by hand, another Berth's on the same engine) is
never a candidate. Removal is never forced: the engine itself refuses to delete an image any
container (running or stopped) was created from, a second guard beside the caller's check.
"""
import dataclasses

import docker.errors

from containers.engine import LABEL_APP_ID, LABEL_INSTANCE, client, engine, instance_id, reason
from containers.image_builds import LABEL_BUILD, LABEL_DEPLOYMENT


@dataclasses.dataclass(frozen=True)
class BuiltImage:
    id: str                    # sha256:...
    tags: tuple[str, ...]      # repo:tag names (may be empty once a newer build took the tag)
    app_id: str
    deployment: int | None     # the berth.deployment label: the build's order within Berth
    created: int               # epoch seconds (the engine's `Created`)


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def built_images() -> list[BuiltImage]:
    """Every image this Berth built (both labels present), newest first."""
    with engine("Cannot list images"):
        rows = client().api.images(filters={"label": [f"{LABEL_BUILD}=true", f"{LABEL_INSTANCE}={instance_id()}"]})
    found = []
    for row in rows:
        labels = row.get("Labels") or {}
        if labels.get(LABEL_BUILD) != "true" or labels.get(LABEL_INSTANCE) != instance_id():
            continue   # the filter already says so; checked again because removal depends on it
        tags = tuple(t for t in (row.get("RepoTags") or ()) if t and t != "<none>:<none>")
        found.append(BuiltImage(id=row["Id"], tags=tags, app_id=labels.get(LABEL_APP_ID, ""),
                                deployment=_int(labels.get(LABEL_DEPLOYMENT)), created=int(row.get("Created") or 0)))
    return sorted(found, key=lambda i: (i.deployment or 0, i.created), reverse=True)


def images_of_containers() -> set[str]:
    """Image ids of every container on the engine, in any state and of any owner."""
    with engine("Cannot list containers"):
        rows = client().api.containers(all=True)
    used = set()
    for row in rows:
        if row.get("ImageID"):
            used.add(row["ImageID"])
    return used


def remove(image: BuiltImage) -> str | None:
    """Remove the image (each of its tags, then the image); None when it went, else why not (the
    engine's reason: in use, or gone already). Never forced."""
    api = client().api
    try:
        for tag in image.tags:
            api.remove_image(tag, force=False, noprune=False)
        if not image.tags or _exists(image.id):
            api.remove_image(image.id, force=False, noprune=False)
    except docker.errors.ImageNotFound:
        return None
    except (docker.errors.APIError, docker.errors.DockerException) as exc:
        return reason(exc)
    return None


def _exists(image_id):
    try:
        client().api.inspect_image(image_id)
        return True
    except docker.errors.ImageNotFound:
        return False
