"""Backups: one row per app or box backup, whatever its state, and what restoring it needs."""
import peewee

from .db import BaseModel, JSONField, utcnow

STATES = ("creating", "normal", "error")
TYPES = ("box", "app")


class Backup(BaseModel):
    # Path-like, as Cloudron's: box `<tag>/box_<time>_v<version>`, app `<tag>/app_<appId>_<time>_v<version>`
    # where <tag> is the start of the (full) backup. It is also where the backup lives in the storage.
    id = peewee.CharField(primary_key=True, max_length=512)
    type = peewee.CharField(max_length=8, index=True)
    app_id = peewee.CharField(max_length=64, null=True, index=True)
    state = peewee.CharField(max_length=16, default="creating", index=True)
    format = peewee.CharField(max_length=16)                 # tgz | zstd | rsync
    version = peewee.CharField(max_length=64, default="")    # platform version (box) or app version (app)
    depends_on = JSONField(default=list)                     # box: the app backup ids a full restore needs
    manifest = JSONField(null=True)                          # app: the manifest of the backed-up app
    app_config = JSONField(null=True)                        # app: what recreating it needs
    size = peewee.BigIntegerField(default=0)                 # bytes stored
    preserve_secs = peewee.IntegerField(default=0)
    remote_path = peewee.CharField(max_length=600)           # path in the storage (without format suffix)
    checksum_path = peewee.CharField(max_length=700, null=True)
    encrypted = peewee.BooleanField(default=False)
    task_id = peewee.IntegerField(null=True)
    error = JSONField(null=True)                             # {message, stage}
    stages = JSONField(default=dict)                         # {snapshot|upload|verify: {outcome, size, ...}}
    creation_time = peewee.DateTimeField(default=utcnow, index=True)

    class Meta:
        table_name = "backups"
