"""Installed apps: what the user asked for (manifest, location, limits) and where it stands."""
import peewee

from .db import BaseModel, JSONField, utcnow


class App(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=64)
    app_store_id = peewee.CharField(max_length=256, default="")
    manifest = JSONField()
    installation_state = peewee.CharField(max_length=48, index=True)
    run_state = peewee.CharField(max_length=16, default="running")
    health = peewee.CharField(max_length=16, null=True)
    health_changed_at = peewee.DateTimeField(null=True)
    task_id = peewee.IntegerField(null=True)
    error = JSONField(null=True)  # {message, reason, taskId, installationState}
    location = peewee.CharField(max_length=63)
    domain = peewee.CharField(max_length=253, index=True)
    alternate_domains = JSONField(default=list)  # [{domain, subdomain}] served as aliases
    redirect_domains = JSONField(default=list)   # [{domain, subdomain}] 301 to the main fqdn
    port_bindings = JSONField(default=dict)      # {ENV_NAME: hostPort}
    access_restriction = JSONField(null=True)
    memory_limit = peewee.BigIntegerField(default=0)
    env = JSONField(default=dict)
    label = peewee.CharField(max_length=256, default="")
    tags = JSONField(default=list)
    has_icon = peewee.BooleanField(default=False)
    debug_mode = JSONField(null=True)
    enable_backup = peewee.BooleanField(default=True)
    enable_automatic_update = peewee.BooleanField(default=True)
    robots_txt = peewee.TextField(default="")
    cpu_shares = peewee.IntegerField(default=512)            # Docker CPU weight (2..1024)
    reverse_proxy_config = JSONField(null=True)              # {robotsTxt, csp, hstsPreload} of its vhost
    data_dir = peewee.TextField(null=True)                   # custom host folder of /app/data; null = default
    container_id = peewee.CharField(max_length=80, default="")
    host_port = peewee.IntegerField(null=True)   # the container's httpPort published on 127.0.0.1
    creation_time = peewee.DateTimeField(default=utcnow)
    update_time = peewee.DateTimeField(default=utcnow)
    ts = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("domain", "location"), True),)
