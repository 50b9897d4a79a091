"""Volume records: add, list, change, remove, and whether each is mounted and reachable.

Kinds of volume (`mountType`):
    filesystem  a host folder the admin made (volumes.paths decides which folders may be one)
    mountpoint  the same, and it must be a mount point (a disk the admin mounted)
    cifs, nfs, sshfs  a share Berth mounts itself at <data>/volumes/<id> (volumes.network)
`ext4`/`xfs` (Cloudron formats and mounts a disk) are refused: mount the disk on the server and
add it as `mountpoint`.

The request does the work at once, as on Cloudron: a share that does not mount is refused with
the mount's complaint (400) and nothing is stored.
"""
import os
import re
import shutil
import threading
import uuid

import peewee

import eventlog
from core import config, data_paths, sealing
from core.errors import BadRequest, Conflict, NotFound
from core.times import iso
from models import database
from models.apps import App
from models.volumes import AppMount, Volume
from volumes import network, paths

HOST_TYPES = ("filesystem", "mountpoint")
MOUNT_TYPES = (*HOST_TYPES, *network.NETWORK_TYPES)
# The folder name under /media in the app: letters, digits and a few safe signs, no '/' or '..'.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.@+-]{0,63}$")
REACH_TIMEOUT = 5   # seconds a status check waits for a share to answer


def _seal(volume_id: str, options: dict) -> dict:
    """The options as stored: each secret sealed (core.sealing, the key outside the database)
    for this volume and field, so a copy of the database does not give away a share's password."""
    return {k: (sealing.seal(v, f"volume:{volume_id}:{k}") if k in network.SECRETS and v else v)
            for k, v in options.items()}


def mount_options(volume: Volume) -> dict:
    """The stored options with the secrets opened (a secret sealed on another host opens as
    nothing, so the volume must be given it again)."""
    return {k: ((sealing.unseal(v, f"volume:{volume.id}:{k}") or "") if k in network.SECRETS else v)
            for k, v in (volume.mount_options or {}).items()}


def to_api(volume: Volume) -> dict:
    """The Volume object of the API; secrets masked."""
    return {"id": volume.id, "name": volume.name, "hostPath": volume.host_path, "mountType": volume.mount_type,
            "mountOptions": network.masked(volume.mount_options), "creationTime": iso(volume.creation_time)}


def get_volume(volume_id: str) -> Volume:
    return Volume.get_or_raise(NotFound("No such volume"), Volume.id == volume_id)


def list_volumes() -> list[Volume]:
    return list(Volume.select().order_by(Volume.name))


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not NAME.match(name) or name.endswith((" ", ".")):
        raise BadRequest("must be 1-64 letters, digits, spaces or _.@+- and start with a letter or digit "
                         "(it is the folder name under /media in the app)", "name")
    return name


def _check_type(mount_type: object) -> str:
    if mount_type in ("ext4", "xfs"):
        raise BadRequest(f"{mount_type} disks are not formatted or mounted by Berth: mount the disk on the "
                         "server and add it as mountpoint", "mountType")
    if mount_type not in MOUNT_TYPES:
        raise BadRequest(f"must be one of {', '.join(MOUNT_TYPES)}", "mountType")
    return mount_type


def _taken(name: str, host_path: str | None, but: str | None = None) -> None:
    others = Volume.select().where(Volume.id != (but or ""))
    if others.where(Volume.name == name).exists():
        raise Conflict(f"A volume named {name} already exists")
    if host_path and others.where(Volume.host_path == host_path).exists():
        raise Conflict(f"A volume with hostPath {host_path} already exists")


def add(actor: eventlog.Actor, body: dict) -> str:
    """Check, mount (network types), store; returns the new volume's id."""
    name = _check_name(body.get("name"))
    mount_type = _check_type(body.get("mountType"))
    volume_id = uuid.uuid4().hex
    if mount_type in HOST_TYPES:
        host_path = paths.check_folder(body.get("hostPath"), config.get().data_dir)
        if mount_type == "mountpoint" and not paths.is_mount_point(host_path):
            raise BadRequest(f"{host_path} is not a mount point", "hostPath")
        options = {}
    else:
        options = network.check_options(mount_type, body.get("mountOptions"))
        host_path = data_paths.volume_mount(volume_id)
    _taken(name, host_path)
    if mount_type in network.NETWORK_TYPES:
        network.mount(mount_type, options, host_path, data_paths.volume_keys(volume_id))
    try:
        Volume.create(id=volume_id, name=name, host_path=host_path, mount_type=mount_type,
                      mount_options=_seal(volume_id, options))
    except peewee.IntegrityError:
        _forget_share(mount_type, volume_id)
        raise Conflict(f"A volume named {name} already exists") from None
    eventlog.record("volume.add", actor, volumeId=volume_id, name=name, mountType=mount_type, hostPath=host_path)
    return volume_id


def update(actor: eventlog.Actor, volume_id: str, body: dict) -> None:
    """New mount settings of a network volume: unmounted, mounted with the new ones (on failure
    the old ones are mounted again and the change is refused). Apps that mount the volume see
    the new mount once their container is re-created (restart or configure)."""
    volume = get_volume(volume_id)
    mount_type = _check_type(body.get("mountType") or volume.mount_type)
    if volume.mount_type in HOST_TYPES or mount_type in HOST_TYPES:
        if mount_type != volume.mount_type or body.get("mountOptions"):
            raise BadRequest(f"only network volumes have mount settings to change, not {volume.mount_type}",
                             "mountType")
        return
    current = mount_options(volume)
    stored = current if mount_type == volume.mount_type else {}
    options = network.check_options(mount_type, body.get("mountOptions"), stored)
    network.require_tool(mount_type)
    keys = data_paths.volume_keys(volume.id)
    if paths.is_mount_point(volume.host_path):
        network.unmount(volume.host_path)
    try:
        network.mount(mount_type, options, volume.host_path, keys)
    except BadRequest:
        try:
            network.mount(volume.mount_type, current, volume.host_path, keys)
        except BadRequest:
            pass    # the status route shows it is not mounted; the new settings are still refused
        raise
    Volume.update(mount_type=mount_type, mount_options=_seal(volume.id, options)).where(
        Volume.id == volume.id).execute()
    eventlog.record("volume.update", actor, volumeId=volume.id, name=volume.name, mountType=mount_type)


def users_of(volume_id: str) -> list[str]:
    """The ids of the apps that mount the volume."""
    return [m.app_id for m in AppMount.select(AppMount.app).where(AppMount.volume == volume_id)]


def _in_use(volume: Volume) -> Conflict:
    names = [f"{a.location}.{a.domain}" if a.location else a.domain
             for a in App.select().where(App.id.in_(users_of(volume.id)))]
    return Conflict(f"Volume {volume.name} is used by {', '.join(names) or 'an app'}: "
                    "remove it from the app's mounts first")


def _forget_share(mount_type: str, volume_id: str) -> None:
    if mount_type not in network.NETWORK_TYPES:
        return
    target = data_paths.volume_mount(volume_id)
    if paths.is_mount_point(target):
        network.unmount(target)
    if not paths.is_mount_point(target):
        try:
            os.rmdir(target)        # only an empty folder: never what a share still holds
        except OSError:
            pass
    shutil.rmtree(data_paths.volume_keys(volume_id), ignore_errors=True)


def remove(actor: eventlog.Actor, volume_id: str) -> None:
    """Remove the record (a network share is unmounted; a host folder keeps its files). A volume
    that apps mount is refused (409)."""
    volume = get_volume(volume_id)
    with database.atomic():
        if users_of(volume.id):
            raise _in_use(volume)
        try:
            Volume.delete().where(Volume.id == volume.id).execute()
        except peewee.IntegrityError:     # a mount was added meanwhile (the foreign key refuses)
            raise _in_use(volume) from None
    _forget_share(volume.mount_type, volume.id)
    eventlog.record("volume.remove", actor, volumeId=volume.id, name=volume.name, mountType=volume.mount_type)


def _reachable(path: str) -> str | None:
    """None when the folder answers within REACH_TIMEOUT, else why not (a hung share must not hang
    the request: the check runs in a daemon thread)."""
    outcome = []

    def probe():
        try:
            os.statvfs(path)
            os.listdir(path)
            outcome.append(None)
        except OSError as e:
            outcome.append(e.strerror or str(e))

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(REACH_TIMEOUT)
    return outcome[0] if outcome else f"no answer within {REACH_TIMEOUT} s"


def status(volume_id: str) -> dict:
    """{state: active|inactive, message}: is the folder there (filesystem), mounted (the others),
    and does it answer?"""
    volume = get_volume(volume_id)
    path = volume.host_path
    if volume.mount_type == "filesystem":
        if not os.path.isdir(path) or os.path.islink(path):
            return {"state": "inactive", "message": f"{path} does not exist or is not a directory"}
    elif not paths.is_mount_point(path):
        why = network.missing_tool(volume.mount_type) if volume.mount_type in network.NETWORK_TYPES else None
        return {"state": "inactive", "message": f"Not mounted at {path}" + (f": {why}" if why else "")}
    why = _reachable(path)
    if why:
        return {"state": "inactive", "message": f"{path} cannot be read: {why}"}
    return {"state": "active", "message": "Mounted" if volume.mount_type != "filesystem" else "Folder is present"}


def ensure_mounted(volume: Volume) -> None:
    """Mount a network volume again when it is not (after a reboot): before a container binds it."""
    if volume.mount_type in network.NETWORK_TYPES and not paths.is_mount_point(volume.host_path):
        network.mount(volume.mount_type, mount_options(volume), volume.host_path,
                      data_paths.volume_keys(volume.id))
