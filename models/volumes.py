"""Volumes (host folders and network shares an admin registers) and which apps mount them."""
import peewee

from .apps import App
from .db import BaseModel, JSONField, utcnow


class Volume(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=64)
    name = peewee.CharField(max_length=64, unique=True)      # the folder under /media in the app
    host_path = peewee.TextField()                           # for network types: where Berth mounts it
    mount_type = peewee.CharField(max_length=16)             # filesystem, mountpoint, cifs, nfs, sshfs
    # host, remoteDir, username, ...; the password and privateKey are secrets: sealed with the at-rest
    # key (core.sealing; Berth needs them to mount again), masked in every answer, never logged
    mount_options = JSONField(default=dict)
    creation_time = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "volumes"


class AppMount(BaseModel):
    """Volume `volume` is bound into app `app` at /media/<volume name>. A volume with mounts cannot
    be removed (the foreign key refuses too, should the check in volumes.remove be raced)."""
    app = peewee.ForeignKeyField(App, column_name="app_id", on_delete="CASCADE", backref="volume_mounts")
    volume = peewee.ForeignKeyField(Volume, column_name="volume_id", on_delete="RESTRICT", backref="app_mounts")
    read_only = peewee.BooleanField(default=True)

    class Meta:
        table_name = "app_mounts"
        primary_key = peewee.CompositeKey("app", "volume")
