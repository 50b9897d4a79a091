"""Schema versions 1 to 6, frozen: the models as they were when these migrations were written
(commit f796de7), so the live models in models/*.py can change without changing what these
steps create. A later migration never imports live models either: it freezes what it needs.
"""
import peewee
from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as migrate_schema

from models.db import BaseModel, JSONField, utcnow

# --- models/identity.py
ROLES = ("owner", "admin", "mailmanager", "usermanager", "user")
# Higher index = fewer rights; a role may manage roles below it.
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}


class User(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=64)
    username = peewee.CharField(max_length=199, null=True, unique=True)
    email = peewee.CharField(max_length=254, unique=True)
    fallback_email = peewee.CharField(max_length=254, default="")
    display_name = peewee.CharField(max_length=512, default="")
    password_hash = peewee.CharField(max_length=256, null=True)
    role = peewee.CharField(max_length=32, default="user", index=True)
    active = peewee.BooleanField(default=True)
    source = peewee.CharField(max_length=16, default="")
    invite_token_hash = peewee.CharField(max_length=128, null=True)
    has_avatar = peewee.BooleanField(default=False)
    creation_time = peewee.DateTimeField(default=utcnow)
    last_login_time = peewee.DateTimeField(null=True)




class Group(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=64)
    name = peewee.CharField(max_length=200, unique=True)
    source = peewee.CharField(max_length=16, default="")
    creation_time = peewee.DateTimeField(default=utcnow)


class GroupMember(BaseModel):
    group = peewee.ForeignKeyField(Group, on_delete="CASCADE", backref="memberships")
    user = peewee.ForeignKeyField(User, on_delete="CASCADE", backref="memberships")

    class Meta:
        primary_key = peewee.CompositeKey("group", "user")
        indexes = ((("user", "group"), False),)


# --- models/credentials.py
class Token(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=64)
    token_hash = peewee.CharField(max_length=64, unique=True)  # sha256 hex of the secret
    user = peewee.ForeignKeyField(User, on_delete="CASCADE", backref="tokens")
    name = peewee.CharField(max_length=64, default="")
    client_id = peewee.CharField(max_length=32, default="cid-sdk")
    scope = JSONField(default=lambda: {"*": "rw"})
    expires = peewee.BigIntegerField()  # epoch milliseconds, as the API shows it
    creation_time = peewee.DateTimeField(default=utcnow)
    last_used_time = peewee.DateTimeField(null=True)


class AppPassword(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=64)
    user = peewee.ForeignKeyField(User, on_delete="CASCADE", backref="app_passwords")
    name = peewee.CharField(max_length=64)
    identifier = peewee.CharField(max_length=128)
    password_hash = peewee.CharField(max_length=64)  # sha256 hex; the secret is random
    creation_time = peewee.DateTimeField(default=utcnow)


class LoginFailure(BaseModel):
    key = peewee.CharField(max_length=300, index=True)  # "user:<name>" or "ip:<address>"
    at = peewee.DoubleField(index=True)  # epoch seconds


# --- models/eventlog.py
class Event(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=64)
    action = peewee.CharField(max_length=64, index=True)
    source = JSONField(default=dict)  # {userId, username, ip}
    data = JSONField(default=dict)
    creation_time = peewee.DateTimeField(default=utcnow, index=True)


# --- models/settings.py
class Setting(BaseModel):
    name = peewee.CharField(primary_key=True, max_length=64)
    value = JSONField(null=True)


# --- models/domains.py
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


# --- models/tasks.py
class Task(BaseModel):
    """One long operation. The table is also the queue: any process may insert a pending row,
    a runner claims it (pending -> active) and runs `body` in a child process."""
    id = peewee.AutoField()
    type = peewee.CharField(max_length=32, index=True)      # Cloudron task type: app, backup, ...
    body = peewee.CharField(max_length=200)                  # "module:function" run by the task process
    args = JSONField(default=dict)                           # keyword arguments of the body
    locks = peewee.CharField(max_length=400, default="")     # comma-separated; equal keys never run together
    timeout = peewee.IntegerField(null=True)                 # seconds; None = no limit
    percent = peewee.IntegerField(default=0)
    message = peewee.TextField(default="")
    error = JSONField(null=True)                             # {message, code}
    result = JSONField(null=True)
    success = peewee.BooleanField(default=False)
    pending = peewee.BooleanField(default=True, index=True)
    active = peewee.BooleanField(default=False, index=True)
    creation_time = peewee.DateTimeField(default=utcnow)
    ts = peewee.DateTimeField(default=utcnow)                # last update
    started_at = peewee.DateTimeField(null=True)
    runner = peewee.CharField(max_length=64, null=True)      # TaskRunner.id of the claiming runner
    pid = peewee.IntegerField(null=True)                     # task process id (on the runner's host)
    stop_reason = peewee.CharField(max_length=16, null=True)  # 'stopped' or 'timeout' once requested

    class Meta:
        table_name = "tasks"


class TaskRunner(BaseModel):
    """A live runner (one per server worker process) and its lease. Tasks owned by a runner whose
    lease lapsed, or whose process is gone from this host, are crashed."""
    id = peewee.CharField(primary_key=True, max_length=64)
    host = peewee.CharField(max_length=255)
    pid = peewee.IntegerField()
    pid_start = peewee.CharField(max_length=32, default="")  # /proc start time: tells pid reuse apart
    heartbeat = peewee.DoubleField()                          # epoch seconds

    class Meta:
        table_name = "task_runners"


class Schedule(BaseModel):
    """A recurring job: cron pattern with seconds, and the "module:function" it calls."""
    name = peewee.CharField(primary_key=True, max_length=64)
    pattern = peewee.CharField(max_length=128)               # 6-field cron, or 'never'
    action = peewee.CharField(max_length=200)
    args = JSONField(default=dict)
    updated = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "schedules"


class ScheduleRun(BaseModel):
    """Claim of one firing of a schedule: the primary key makes exactly one process win it."""
    schedule = peewee.CharField(max_length=64)
    fire_time = peewee.BigIntegerField()                     # epoch milliseconds of the planned fire time
    runner = peewee.CharField(max_length=64)
    claimed = peewee.DateTimeField(default=utcnow, index=True)

    class Meta:
        table_name = "schedule_runs"
        primary_key = peewee.CompositeKey("schedule", "fire_time")


# --- models/apps.py
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
    container_id = peewee.CharField(max_length=80, default="")
    host_port = peewee.IntegerField(null=True)   # the container's httpPort published on 127.0.0.1
    creation_time = peewee.DateTimeField(default=utcnow)
    update_time = peewee.DateTimeField(default=utcnow)
    ts = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("domain", "location"), True),)


# --- models/backups.py
STATES = ("creating", "normal", "error")
TYPES = ("box", "app")


class Backup(BaseModel):
    # Path-like, as Cloudron's: box `<tag>/box_<time>_v<version>`, app `<tag>/app_<appId>_<time>_v<version>`
    # where <tag> is the start of the (full) backup. It is also where the backup lives in the storage.
    id = peewee.CharField(primary_key=True, max_length=512)
    type = peewee.CharField(max_length=8, index=True)
    app_id = peewee.CharField(max_length=64, null=True, index=True)
    state = peewee.CharField(max_length=16, default="creating", index=True)
    format = peewee.CharField(max_length=16)                 # tgz | rsync
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


# --- models/notifications.py
class Notification(BaseModel):
    id = peewee.AutoField()
    event_id = peewee.CharField(max_length=64, null=True)
    title = peewee.CharField(max_length=512)
    message = peewee.TextField(default="")   # markdown
    acknowledged = peewee.BooleanField(default=False, index=True)
    creation_time = peewee.DateTimeField(default=utcnow, index=True)

    class Meta:
        table_name = "notifications"


# --- the steps ---------------------------------------------------------------------------------

SORT_KEY = peewee.CharField(max_length=260, default="")  # the index is added by the step


def initial(db):
    db.create_tables([User, Group, GroupMember, Token, AppPassword, LoginFailure, Event, Setting])


def domains(db):
    db.create_tables([Domain])


def tasks(db):
    db.create_tables([Task, TaskRunner, Schedule, ScheduleRun])


def apps(db):
    db.create_tables([App])


def user_sort_key(db):
    """Users get an indexed listing order (users.sort_key: username, or "~" + email)."""
    table = User._meta.table_name
    if "sort_key" not in {c.name for c in db.get_columns(table)}:  # databases made before freezing have it
        migrator = SchemaMigrator.from_database(db)
        migrate_schema(migrator.add_column(table, "sort_key", SORT_KEY), migrator.add_index(table, ("sort_key",)))
    db.execute_sql(f'UPDATE "{table}" SET sort_key = CASE WHEN username IS NULL THEN \'~\' || email '
                   f'ELSE username END')


def backups(db):
    db.create_tables([Backup, Notification])
