"""The lifecycle requests of an app: each checks and records what was asked, then queues the app
task that does the work (apps.queue_task; bodies in apps/task_bodies.py)."""
import shutil
import uuid

import peewee

import apps
import domains
import eventlog
import volumes
from apps import manifests, validation
from appstore import catalog
from core import data_paths
from core.errors import BadRequest, Conflict
from models import utcnow
from models.apps import App


def _resolve_manifest(body):
    """(appStoreId to store, manifest). The appStoreId is kept as the client sent it (`id` or
    `id@version`), as Cloudron returns it; the manifest says which version was resolved."""
    if body.get("manifest") is not None:
        return "", manifests.validate(body["manifest"])
    if body.get("appStoreId"):
        _, manifest = catalog.resolve(body["appStoreId"])
        return body["appStoreId"], manifests.validate(manifest, "appStoreId")
    raise BadRequest("either manifest or appStoreId is required", "manifest")


# Cloudron 7+ (POST /apps) names -> the seed names (POST /apps/install) Berth stores.
MODERN_NAMES = {"subdomain": "location", "ports": "portBindings"}


def seed_names(body: dict) -> dict:
    """The install body with the modern names (`subdomain`, `ports`) given as the seed names;
    both spellings of one field must agree."""
    body = dict(body)
    for modern, seed in MODERN_NAMES.items():
        if modern in body:
            value = body.pop(modern)
            if seed in body and body[seed] != value:
                raise BadRequest(f"differs from {modern}; send one of them", seed)
            body[seed] = value
    return body


def _queue(app, state, body, actor, action, **args):
    """Queue app task `app.<body>` with `args`; its event carries the args except the env."""
    event = {k: v for k, v in args.items() if k != "env"}
    return apps.queue_task(app, state, f"app.{body}", args, actor=actor, action=action, event=event)


def _check_operable(app, op):
    if app.installation_state == "pending_uninstall":
        raise Conflict("App is being uninstalled")
    if app.installation_state == "error" and op not in ("configure", "repair", "uninstall"):
        raise Conflict(f"App is in error state ({(app.error or {}).get('message', 'unknown')}); repair it first")


def install(actor: eventlog.Actor, body: dict) -> tuple[str, int]:
    """Check everything, then create the app row and queue its install task: a refused install
    (400, 404, 409) leaves no row, no task and no container. Takes the seed names and the modern
    ones (seed_names); `accessRestriction` is required, null meaning every user."""
    body = seed_names(body)
    if "accessRestriction" not in body:
        raise BadRequest("is required: null (every user) or {users: [], groups: []}", "accessRestriction")
    if not isinstance(body.get("location"), str):
        raise BadRequest("is required (a subdomain, \"\" for the bare domain)", "location")
    store_id, manifest = _resolve_manifest(body)
    location, domain = validation.check_location_and_domain(body["location"], body.get("domain"))
    # someone else's DNS record at that name: 409 before anything is created, unless overwriteDns
    domains.dns_records.check_overwrite([domains.fqdn(location, domain)], bool(body.get("overwriteDns")))
    app = App(
        id=str(uuid.uuid4()), app_store_id=store_id, manifest=manifest,
        installation_state="pending_install", run_state="running", location=location, domain=domain,
        port_bindings=validation.check_port_bindings(manifest, body.get("portBindings")),
        access_restriction=validation.check_access(body.get("accessRestriction")),
        memory_limit=validation.check_memory(body.get("memoryLimit")), env=validation.check_env(body.get("env")),
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


def uninstall(actor: eventlog.Actor, app_id: str) -> int:
    app = apps.get_app(app_id)
    return _queue(app, "pending_uninstall", "uninstall", actor, "app.uninstall")


def start(actor: eventlog.Actor, app_id: str) -> int:
    app = apps.get_app(app_id)
    _check_operable(app, "start")
    return _queue(app, "pending_start", "start", actor, "app.start")


def stop(actor: eventlog.Actor, app_id: str) -> int:
    app = apps.get_app(app_id)
    _check_operable(app, "stop")
    return _queue(app, "pending_stop", "stop", actor, "app.stop")


def restart(actor: eventlog.Actor, app_id: str) -> int:
    app = apps.get_app(app_id)
    _check_operable(app, "restart")
    return _queue(app, "pending_restart", "restart", actor, "app.restart")


def repair(actor: eventlog.Actor, app_id: str, body: dict) -> int:
    """Re-run what failed (or re-create the container from the stored configuration)."""
    app = apps.get_app(app_id)
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


def update(actor: eventlog.Actor, app_id: str, body: dict) -> int:
    app = apps.get_app(app_id)
    _check_operable(app, "update")
    store_id, manifest = _resolve_manifest(body)
    if manifest["id"] != app.manifest.get("id") and not body.get("force"):
        raise BadRequest(f"is for app '{manifest['id']}', not '{app.manifest.get('id')}' (use force)", "manifest.id")
    return _queue(app, "pending_update", "update", actor, "app.update", manifest=manifest,
                  app_store_id=store_id or app.app_store_id)


def configure(actor: eventlog.Actor, app_id: str, **changes: object) -> int:
    """Settings that need the container re-created (env, memory, CPU shares, location, ports, debug mode, mounts)."""
    app = apps.get_app(app_id)
    _check_operable(app, "configure")
    overwrite_dns = bool(changes.pop("overwriteDns", False))
    fields = {}
    if "env" in changes:
        fields["env"] = validation.check_env(changes["env"])
    if "memoryLimit" in changes:
        fields["memory_limit"] = validation.check_memory(changes["memoryLimit"])
    if "debugMode" in changes:
        fields["debug_mode"] = changes["debugMode"]
    if "mounts" in changes:   # the app table has no column for them: stored beside it, checked first
        volumes.set_app_mounts(app.id, changes["mounts"])
    if "cpuShares" in changes:
        fields["cpu_shares"] = validation.check_cpu_shares(changes["cpuShares"])
    if "location" in changes:
        fields["location"], fields["domain"] = validation.check_location_and_domain(
            changes["location"], changes.get("domain") or app.domain, exclude_app=app.id)
        fields["alternate_domains"] = validation.check_extra_domains(changes.get("alternateDomains"), app.id)
        fields["redirect_domains"] = validation.check_extra_domains(changes.get("redirectDomains"), app.id,
                                                                    "redirectDomains")
        if changes.get("portBindings") is not None:
            fields["port_bindings"] = validation.check_port_bindings(app.manifest, changes["portBindings"], app.id)
        moved = App(location=fields["location"], domain=fields["domain"], alternate_domains=fields["alternate_domains"],
                    redirect_domains=fields["redirect_domains"])
        old_names = domains.dns_records.app_hosts(app)
        domains.dns_records.check_overwrite(set(domains.dns_records.app_hosts(moved)) - set(old_names), overwrite_dns)
    App.update(**fields, update_time=utcnow()).where(App.id == app.id).execute()
    # the names before the move go with the task: their DNS records are removed once the app moved
    extra = {"previous_hosts": old_names} if "location" in changes else {}
    return _queue(app, "pending_configure", "configure", actor, "app.configure",
                  changed=sorted(changes), **extra)


def set_fields(actor: eventlog.Actor, app_id: str, **fields: object) -> None:
    """Settings that only the database (and the dashboard) care about: label, tags, ..."""
    app = apps.get_app(app_id)
    if "access_restriction" in fields:
        fields["access_restriction"] = validation.check_access(fields["access_restriction"])
    if "tags" in fields:
        fields["tags"] = [str(t).strip() for t in fields["tags"] if str(t).strip()]
    App.update(**fields, ts=utcnow()).where(App.id == app.id).execute()
    eventlog.record("app.configure", actor, appId=app.id, changed=sorted(fields))


def delete_data(app_id: str) -> None:
    custom = App.select(App.data_dir).where(App.id == app_id).scalar()
    if custom:  # a custom dataDir (configure/data_dir) was empty or new when the app moved there
        shutil.rmtree(custom, ignore_errors=True)
    shutil.rmtree(data_paths.app_dir(app_id), ignore_errors=True)
