"""Domains Berth serves apps on, with their DNS provider settings and fallback certificate."""
import peewee

from .db import BaseModel, JSONField, utcnow


class Domain(BaseModel):
    domain = peewee.CharField(primary_key=True, max_length=253)
    zone_name = peewee.CharField(max_length=253)
    provider = peewee.CharField(max_length=32)
    config = JSONField(default=dict)
    tls_config = JSONField(default=dict)
    # The certificate nginx serves for the domain and its apps until ACME exists: uploaded by the
    # user (fallback_generated False) or a self-signed one Berth made. The key never leaves the
    # server through the API; it lives here so every Berth process (and a PostgreSQL standby)
    # can rewrite nginx's files from the database.
    fallback_cert = peewee.TextField()
    fallback_key = peewee.TextField()
    fallback_generated = peewee.BooleanField(default=True)
    locked = peewee.BooleanField(default=False)
    creation_time = peewee.DateTimeField(default=utcnow)
