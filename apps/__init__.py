"""Apps: what may be installed where, and the lifecycle requests that become app tasks.

Request-time work is validation and bookkeeping only: every change that touches Docker or
nginx runs as a task of type `app` (bodies in app_tasks.py). Tasks for one app run one at a
time in order (the task engine serialises them by app id); a request made while another task
runs on the app is queued and shows as `pending`. The app row's `installationState` says what
was asked last, `taskId` which task does it.
"""
import base64
import binascii
import contextlib
import os
import shutil
import socket
import uuid

import peewee

from apps import catalog
import eventlog
from core import config
import domains
from apps import manifests
import tasks
from core.errors import BadRequest, Conflict, NotFound
from models import utcnow
from models.apps import App

RESERVED_PORTS = {22, 25, 53, 80, 443, 587, 993, 3000, 4190}
STEADY = ("installed", "error")


# ---- lookups ----------------------------------------------------------------------------------

def get_app(app_id):
    app = App.get_or_none(App.id == app_id)
    if app is None:
        raise NotFound("No such app")
    return app


def list_apps():
    return list(App.select().order_by(App.creation_time))


def fqdn(app):
    try:
        return domains.fqdn(app.location, app.domain)
    except NotFound:  # the domain row is gone (should not happen: deletion is refused)
        return f"{app.location}.{app.domain}" if app.location else app.domain


def data_dir(app_id):
    return os.path.join(config.get().data_dir, "apps", app_id, "data")


def may_access(app, user_id, role, group_ids):
    """May this user use (see) the app? Admins always; otherwise per accessRestriction."""
    if role in ("owner", "admin") or not app.access_restriction:
        return True
    allowed = app.access_restriction
    return user_id in (allowed.get("users") or []) or bool(set(allowed.get("groups") or []) & set(group_ids))


def _domain_in_use(domain):
    for app in App.select(App.id, App.location, App.domain, App.alternate_domains, App.redirect_domains):
        names = [app.domain] + [d.get("domain") for d in (app.alternate_domains or []) + (app.redirect_domains or [])]
        if domain in names:
            return f"Domain is used by app {app.id}"
    return None


domains.register_in_use_check(_domain_in_use)


# ---- validation -------------------------------------------------------------------------------

def _hostnames(app):
    names = {fqdn(app)}
    for extra in (app.alternate_domains or []) + (app.redirect_domains or []):
        names.add(domains.fqdn(extra.get("subdomain", ""), extra["domain"]))
    return names


def check_location(location, domain, exclude_app=None, field="location"):
    location = (location or "").strip().lower()
    if domains.find(domain) is None:
        raise BadRequest(f"no such domain '{domain}' (add it under /domains first)", "domain")
    wanted = domains.fqdn(location, domain)
    for other in App.select():
        if other.id != exclude_app and wanted in _hostnames(other):
            raise Conflict(f"{wanted} is already in use by app {other.id}")
    return location


def _port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def check_port_bindings(manifest, bindings, exclude_app=None):
    declared = manifests.declared_ports(manifest)
    clean = {}
    taken = {}
    for other in App.select(App.id, App.port_bindings):
        if other.id != exclude_app:
            for port in (other.port_bindings or {}).values():
                taken[port] = other.id
    for env_name, port in (bindings or {}).items():
        field = f"portBindings.{env_name}"
        if env_name not in declared:
            raise BadRequest("is not a port the manifest declares (tcpPorts/udpPorts)", field)
        if not isinstance(port, int) or not 1024 <= port <= 65535 or port in RESERVED_PORTS:
            raise BadRequest("must be a free port between 1024 and 65535", field)
        if port in taken:
            raise Conflict(f"Port {port} is already in use by app {taken[port]}")
        if not _port_free(port):
            raise Conflict(f"Port {port} is already in use on this server")
        clean[env_name] = port
    return clean


def _check_env(env):
    for name, value in (env or {}).items():
        if not manifests.ENV_NAME.match(name) and not name.replace("_", "").isalnum():
            raise BadRequest("must be an environment variable name", f"env.{name}")
        if not isinstance(value, str):
            raise BadRequest("must be a string", f"env.{name}")
    return dict(env or {})


def _check_memory(limit, field="memoryLimit"):
    if limit in (None, 0):
        return 0
    if not isinstance(limit, int) or limit < 6 * 1024 * 1024:
        raise BadRequest("must be 0 (default) or at least 6 MiB (6291456 bytes)", field)
    return limit


def _check_access(restriction):
    if restriction is None:
        return None
    if not isinstance(restriction, dict):
        raise BadRequest("must be null or {users: [], groups: []}", "accessRestriction")
    return {"users": list(restriction.get("users") or []), "groups": list(restriction.get("groups") or [])}


def _resolve_manifest(body):
    if body.get("manifest") is not None:
        return "", manifests.validate(body["manifest"])
    if body.get("appStoreId"):
        store_id, manifest = catalog.resolve(body["appStoreId"])
        return store_id, manifests.validate(manifest, "appStoreId")
    raise BadRequest("either manifest or appStoreId is required", "manifest")


# ---- tasks ------------------------------------------------------------------------------------

def _queue(app, state, body, actor, action, **args):
    """Record the requested state and queue the app task that does the work."""
    task_id = tasks.start("app", f"app.{body}", {"app_id": app.id, **args}, app_id=app.id)
    App.update(installation_state=state, task_id=task_id, ts=utcnow()).where(App.id == app.id).execute()
    eventlog.record(action, actor, appId=app.id, taskId=str(task_id), **{k: v for k, v in args.items() if k != "env"})
    return task_id


def _check_operable(app, op):
    if app.installation_state == "pending_uninstall":
        raise Conflict("App is being uninstalled")
    if app.installation_state == "error" and op not in ("configure", "repair", "uninstall"):
        raise Conflict(f"App is in error state ({(app.error or {}).get('message', 'unknown')}); repair it first")


# ---- operations -------------------------------------------------------------------------------

def install(actor, body):
    store_id, manifest = _resolve_manifest(body)
    domain = body["domain"]
    location = check_location(body.get("location", ""), domain)
    app = App(
        id=str(uuid.uuid4()), app_store_id=store_id, manifest=manifest,
        installation_state="pending_install", run_state="running", location=location, domain=domain,
        port_bindings=check_port_bindings(manifest, body.get("portBindings")),
        access_restriction=_check_access(body.get("accessRestriction")),
        memory_limit=_check_memory(body.get("memoryLimit")), env=_check_env(body.get("env")),
        label=(body.get("label") or "").strip(), tags=list(body.get("tags") or []),
        enable_backup=body.get("enableBackup", True),
        enable_automatic_update=body.get("enableAutomaticUpdate", True),
        debug_mode=body.get("debugMode"), robots_txt=body.get("robotsTxt") or "")
    try:
        app.save(force_insert=True)
    except peewee.IntegrityError:
        raise Conflict(f"{domains.fqdn(location, domain)} is already in use") from None
    task_id = _queue(app, "pending_install", "install", actor, "app.install",
                     fqdn=domains.fqdn(location, domain), image=manifest["dockerImage"])
    return app.id, task_id


def uninstall(actor, app_id):
    app = get_app(app_id)
    return _queue(app, "pending_uninstall", "uninstall", actor, "app.uninstall")


def start(actor, app_id):
    app = get_app(app_id)
    _check_operable(app, "start")
    return _queue(app, "pending_start", "start", actor, "app.start")


def stop(actor, app_id):
    app = get_app(app_id)
    _check_operable(app, "stop")
    return _queue(app, "pending_stop", "stop", actor, "app.stop")


def restart(actor, app_id):
    app = get_app(app_id)
    _check_operable(app, "restart")
    return _queue(app, "pending_restart", "restart", actor, "app.restart")


def repair(actor, app_id, body):
    """Re-run what failed (or re-create the container from the stored configuration)."""
    app = get_app(app_id)
    _check_operable(app, "repair")
    if body.get("manifest") is not None:
        app.manifest = manifests.validate(body["manifest"])
    if body.get("dockerImage"):
        app.manifest = {**app.manifest, "dockerImage": body["dockerImage"]}
    app.save()
    failed = (app.error or {}).get("installationState")
    if failed == "pending_uninstall":
        return uninstall(actor, app_id)
    return _queue(app, "pending_configure", "configure", actor, "app.repair")


def update(actor, app_id, body):
    app = get_app(app_id)
    _check_operable(app, "update")
    store_id, manifest = _resolve_manifest(body)
    if manifest["id"] != app.manifest.get("id") and not body.get("force"):
        raise BadRequest(f"is for app '{manifest['id']}', not '{app.manifest.get('id')}' (use force)", "manifest.id")
    return _queue(app, "pending_update", "update", actor, "app.update", manifest=manifest,
                  app_store_id=store_id or app.app_store_id)


def configure(actor, app_id, **changes):
    """Settings that need the container re-created (env, memory, location, ports, debug mode)."""
    app = get_app(app_id)
    _check_operable(app, "configure")
    fields = {}
    if "env" in changes:
        fields["env"] = _check_env(changes["env"])
    if "memoryLimit" in changes:
        fields["memory_limit"] = _check_memory(changes["memoryLimit"])
    if "debugMode" in changes:
        fields["debug_mode"] = changes["debugMode"]
    if "location" in changes:
        domain = changes.get("domain") or app.domain
        fields["location"] = check_location(changes["location"], domain, exclude_app=app.id)
        fields["domain"] = domain
        fields["alternate_domains"] = _check_extra_domains(changes.get("alternateDomains"), app.id)
        fields["redirect_domains"] = _check_extra_domains(changes.get("redirectDomains"), app.id,
                                                          "redirectDomains")
        if changes.get("portBindings") is not None:
            fields["port_bindings"] = check_port_bindings(app.manifest, changes["portBindings"], app.id)
    App.update(**fields, update_time=utcnow()).where(App.id == app.id).execute()
    return _queue(app, "pending_configure", "configure", actor, "app.configure",
                  changed=sorted(changes))


def _check_extra_domains(entries, app_id, field="alternateDomains"):
    """Alias (served too) or redirect (301 to the app) names: each must be free."""
    clean = []
    for i, entry in enumerate(entries or []):
        if not isinstance(entry, dict) or not entry.get("domain"):
            raise BadRequest("needs {domain, subdomain}", f"{field}.{i}")
        sub = check_location(entry.get("subdomain", ""), entry["domain"], exclude_app=app_id)
        clean.append({"domain": entry["domain"], "subdomain": sub})
    return clean


def set_fields(actor, app_id, **fields):
    """Settings that only the database (and the dashboard) care about: label, tags, ..."""
    app = get_app(app_id)
    if "access_restriction" in fields:
        fields["access_restriction"] = _check_access(fields["access_restriction"])
    if "tags" in fields:
        fields["tags"] = [str(t).strip() for t in fields["tags"] if str(t).strip()]
    App.update(**fields, ts=utcnow()).where(App.id == app.id).execute()
    eventlog.record("app.configure", actor, appId=app.id, changed=sorted(fields))


def delete_data(app_id):
    shutil.rmtree(os.path.dirname(data_dir(app_id)), ignore_errors=True)


# ---- icon ---------------------------------------------------------------------------------------

ICON_MAX_BYTES = 512 * 1024
IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF8", b"RIFF")


def icon_path(app_id):
    return os.path.join(config.get().data_dir, "apps", app_id, "icon")


def set_icon(actor, app_id, icon_b64):
    """A custom icon (base64 image), or None to go back to no custom icon."""
    app = get_app(app_id)
    path = icon_path(app.id)
    if icon_b64 is None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
    else:
        try:
            data = base64.b64decode(icon_b64.split(",", 1)[-1], validate=True)  # data: URLs too
        except (binascii.Error, ValueError):
            raise BadRequest("is not valid base64", "icon") from None
        if not data.startswith(IMAGE_MAGIC) or len(data) > ICON_MAX_BYTES:
            raise BadRequest(f"must be a PNG, JPEG, GIF or WebP image of at most {ICON_MAX_BYTES // 1024} KiB", "icon")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        os.replace(path + ".tmp", path)
    set_fields(actor, app.id, has_icon=icon_b64 is not None)


def read_icon(app_id):
    app = get_app(app_id)
    try:
        with open(icon_path(app.id), "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise NotFound("This app has no icon") from None
