"""Which volumes an app mounts, at /media/<volume name>, read-only or not.

`configure/mounts` replaces the app's list (apps.configure stores it through set_app_mounts, then
re-creates the container in its configure task, which binds what binds_of returns). As on Cloudron
an unknown volumeId is a 404 and readOnly must be a boolean.
"""
import logging

from core.errors import ApiError, BadRequest, NotFound
from models import database
from models.volumes import AppMount, Volume
from volumes import network, paths, records

log = logging.getLogger("berth.volumes")

MEDIA = "/media"


def check_mounts(mounts: object) -> list[tuple[Volume, bool]]:
    """[(volume, read_only)] of a configure/mounts body; BadRequest/NotFound naming the entry."""
    if not isinstance(mounts, list):
        raise BadRequest("must be a list of {volumeId, readOnly}", "mounts")
    seen, out = set(), []
    for i, mount in enumerate(mounts):
        field = f"mounts[{i}]"
        if not isinstance(mount, dict):
            raise BadRequest("must be an object {volumeId, readOnly}", field)
        volume_id, read_only = mount.get("volumeId"), mount.get("readOnly")
        if not isinstance(volume_id, str) or not volume_id:
            raise BadRequest("is required", f"{field}.volumeId")
        if not isinstance(read_only, bool):
            raise BadRequest("must be a boolean", f"{field}.readOnly")
        if volume_id in seen:
            raise BadRequest(f"volume {volume_id} is listed twice", f"{field}.volumeId")
        seen.add(volume_id)
        volume = Volume.get_or_none(Volume.id == volume_id)
        if volume is None:
            raise NotFound(f"No such volume {volume_id}")
        out.append((volume, read_only))
    return out


def set_app_mounts(app_id: str, mounts: object) -> None:
    """Replace the app's mounts with the checked `mounts` (nothing changes when one is refused)."""
    checked = check_mounts(mounts)
    with database.atomic():
        AppMount.delete().where(AppMount.app == app_id).execute()
        for volume, read_only in checked:
            AppMount.create(app=app_id, volume=volume.id, read_only=read_only)


def app_mounts(app_id: str) -> list[dict]:
    """The app's mounts as the App object shows them: [{volumeId, readOnly}]."""
    query = AppMount.select().where(AppMount.app == app_id).order_by(AppMount.volume)
    return [{"volumeId": m.volume_id, "readOnly": m.read_only} for m in query]


def binds_of(app_id: str) -> list[tuple[str, str, bool]]:
    """(host path, /media/<name>, read_only) of each volume the app mounts, for the container;
    a network share that is not mounted (after a reboot) is mounted first."""
    query = (AppMount.select(AppMount, Volume).join(Volume)
             .where(AppMount.app == app_id).order_by(Volume.name))
    binds = []
    for mount in query:
        records.ensure_mounted(mount.volume)
        binds.append((mount.volume.host_path, f"{MEDIA}/{mount.volume.name}", mount.read_only))
    return binds


def remount_shares() -> set[str]:
    """Mount again the network shares apps use that are not mounted (the server rebooted: nothing
    mounts them by itself). Returns the ids of the apps using a share mounted now: their
    containers bound the empty folder and must be restarted to see it. A share that still cannot
    be mounted is logged and left for the next start or configure."""
    query = (AppMount.select(AppMount, Volume).join(Volume)
             .where(Volume.mount_type.in_(sorted(network.NETWORK_TYPES))))
    remounted, apps = set(), set()
    for mount in query:
        volume = mount.volume
        if volume.id not in remounted:
            if paths.is_mount_point(volume.host_path):
                continue
            try:
                records.ensure_mounted(volume)
            except ApiError as e:
                log.warning("volume %s (%s) cannot be mounted: %s", volume.name, volume.mount_type, e.message)
                continue
            remounted.add(volume.id)
        apps.add(mount.app_id)
    return apps
