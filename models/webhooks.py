"""Git sources of apps and the webhook deliveries they received (deployments.webhooks)."""
import peewee

from .apps import App
from .db import BaseModel, utcnow


class GitSource(BaseModel):
    """Where an app's source lives and the secret its webhook is signed with. The token, deploy key
    and webhook secret are sealed with the at-rest key (core.sealing, the key outside the
    database): Berth needs them back (to clone, to check signatures), so they cannot be hashes."""
    app = peewee.ForeignKeyField(App, column_name="app_id", primary_key=True, on_delete="CASCADE",
                                 backref="git_source")
    url = peewee.TextField()
    branch = peewee.CharField(max_length=255)
    token = peewee.TextField(null=True)          # sealed
    deploy_key = peewee.TextField(null=True)     # sealed
    webhook_secret = peewee.TextField()          # sealed
    creation_time = peewee.DateTimeField(default=utcnow)
    update_time = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "git_sources"


class WebhookDelivery(BaseModel):
    """One push that started a deployment. Both the delivery id (a provider's redelivery sends it
    again) and the digest of the signed body (the id header is not signed, so a captured request
    replayed with another id has the same body) are unique per app: a delivery runs once."""
    id = peewee.AutoField()
    app = peewee.ForeignKeyField(App, column_name="app_id", on_delete="CASCADE", backref="webhook_deliveries")
    delivery_id = peewee.CharField(max_length=128)
    body_sha256 = peewee.CharField(max_length=64)
    provider = peewee.CharField(max_length=16)
    commit = peewee.CharField(max_length=64, null=True)
    task_id = peewee.IntegerField(null=True)
    creation_time = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "webhook_deliveries"
        indexes = ((("app", "delivery_id"), True), (("app", "body_sha256"), True))
