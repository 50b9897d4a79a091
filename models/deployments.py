"""Deployments: every build or image change of an app (deployments/), newest number last."""
import peewee

from .apps import App
from .db import BaseModel, JSONField, utcnow

STATES = ("building", "deploying", "live", "failed", "rolled-back")


class Deployment(BaseModel):
    id = peewee.AutoField()
    # deployments go with their app: an uninstall deletes the row and these with it
    app = peewee.ForeignKeyField(App, column_name="app_id", on_delete="CASCADE", backref="deployments")
    number = peewee.IntegerField()                      # build number per app: the image tag
    source = JSONField(default=dict)                    # {type, path | url, ref | image}; secrets never here
    commit = peewee.CharField(max_length=64, null=True)  # the git commit that was built
    image = peewee.CharField(max_length=512, null=True)  # what runs once deployed
    manifest = JSONField(null=True)                     # the manifest deployed (for a rollback)
    manifest_version = peewee.CharField(max_length=64, null=True)
    state = peewee.CharField(max_length=16, index=True)
    reason = peewee.TextField(null=True)                # why it failed or was rolled back
    task_id = peewee.IntegerField(null=True)            # whose log is the deployment's log
    rollback_of = peewee.IntegerField(null=True)        # the earlier deployment a rollback put back
    source_actor = JSONField(null=True)                 # who: eventlog.Actor.source()
    creation_time = peewee.DateTimeField(default=utcnow)
    finish_time = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "deployments"
        indexes = ((("app", "number"), True),)
