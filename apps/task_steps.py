"""App task steps shared by the app task bodies (apps.task_bodies) and the backup bodies: they run
in a task process (tasks.child) and do the Docker and nginx work.

Every body goes through `run_app_task`, which marks the app as busy with this task, and records the
outcome on the app: `installed` on success, `error` (with the message, the state that failed
and the task id, for repair) on any failure or stop. A process killed outright (SIGKILL,
server crash, timeout) cannot write that; apps.reconcile.reconcile_states does it afterwards.
"""
import contextlib
import logging
from collections.abc import Iterator

import apps
import containers
import domains
import reverse_proxy
import volumes
from addons import registry as addon_registry
from apps import manifests, probe, proxy_config
from core import config
from models import utcnow
from models.apps import App
from platform_settings import registry as registry_settings
from tasks.context import TaskContext

log = logging.getLogger("berth.apps")


def _origin():
    cfg = config.get()
    return f"http://{cfg.host}:{cfg.port}"


def _app_origin(host):
    # Where browsers reach the app: nginx serves HTTPS on BERTH_PROXY_HTTPS_PORT, so a port other
    # than 443 belongs in the origin, or every absolute link the app builds from it is broken.
    port = config.get().proxy_https_port
    return f"https://{host}" + ("" if port == 443 else f":{port}")


def _api_origin() -> str:
    """Where the app reaches Berth's API: the dashboard's origin (`https://my.<domain>`, served by
    the managed nginx) once set_dashboard_domain made one, as Cloudron's apps get it; before that
    the API's own address, which only the host reaches (Berth listens on loopback)."""
    dashboard = domains.dashboard.vhost_spec()
    return _app_origin(dashboard["fqdn"]) if dashboard else _origin()


def _dashboard_hosts(network: str | None) -> dict[str, str] | None:
    """The dashboard's name pointed at the host's address on the container's network, so the API
    origin resolves inside the container without public DNS (nginx listens there unless
    BERTH_PROXY_LISTEN binds it to one address)."""
    dashboard = domains.dashboard.vhost_spec()
    return {dashboard["fqdn"]: containers.network_gateway(network)} if dashboard else None


def environment(app: App, addon_env: dict[str, str] | None = None) -> dict[str, str]:
    """The CLOUDRON_* environment an app expects, plus its port bindings, what its addons give it
    (`addon_env`: database credentials, mail settings) and its custom env."""
    host = apps.fqdn(app)
    env = {
        "CLOUDRON": "1",
        "CLOUDRON_APP_ID": app.id,
        "CLOUDRON_APP_ORIGIN": _app_origin(host),
        "CLOUDRON_APP_DOMAIN": host,
        "CLOUDRON_API_ORIGIN": _api_origin(),
        "CLOUDRON_WEBADMIN_ORIGIN": _api_origin(),
    }
    env.update({name: str(port) for name, port in (app.port_bindings or {}).items()})
    env.update(addon_env or {})
    env.update(app.env or {})
    return env


def vhost_spec(app: App, state: str = "running") -> dict:
    return {
        "app_id": app.id, "fqdn": apps.fqdn(app),
        "upstream_port": app.host_port if state == "running" else None,
        "aliases": [domains.fqdn(d.get("subdomain", ""), d["domain"]) for d in app.alternate_domains or []],
        "redirects": [domains.fqdn(d.get("subdomain", ""), d["domain"]) for d in app.redirect_domains or []],
        "state": state,
        "proxy_config": proxy_config.of(app),   # robots.txt, CSP, HSTS preload (configure/reverse_proxy)
    }


def show_error_page(app_id: str) -> None:
    """Have nginx show the "not available" page for an app that went to `error`, instead of what
    its vhost said before (typically "being installed", which would never change). Best effort:
    an app without a vhost (never got that far, or uninstalled) is left alone, and a failure here
    must not hide the error that brought the app down."""
    try:
        app = App.get_or_none(App.id == app_id)
        if app is not None and app_id in reverse_proxy.vhosts():
            reverse_proxy.write_app_vhost(**vhost_spec(app, "error"), certificate=domains.certificate_files)
    except Exception:  # noqa: BLE001 - see above
        log.exception("could not show the error page of app %s", app_id)


def set_app(app_id: str, **fields: object) -> None:
    App.update(**fields, ts=utcnow()).where(App.id == app_id).execute()


@contextlib.contextmanager
def run_app_task(task: TaskContext, app_id: str, state: str) -> Iterator[App]:
    app = apps.get_app(app_id)
    # A request queued after this task has already recorded its own state and task id (apps.queue_task);
    # that is what the app shows until that task runs, so only an older or no task is replaced.
    App.update(installation_state=state, task_id=task.id, error=None, ts=utcnow()).where(
        (App.id == app_id) & (App.task_id.is_null(True) | (App.task_id <= task.id))).execute()
    try:
        yield App.get_by_id(app_id)
    except BaseException as e:  # noqa: B902 - a stop (TaskStopped) must mark the app too
        message = str(e) or f"{type(e).__name__}: task stopped"
        set_app(app_id, installation_state="error", task_id=None,
             error={"message": message, "reason": type(e).__name__, "taskId": str(task.id),
                    "installationState": state})
        show_error_page(app_id)
        raise
    latest = App.get_or_none(App.id == app_id)
    if latest is not None and latest.task_id in (task.id, None):
        # Only the newest task decides the resting state; a queued one will set its own.
        set_app(app_id, installation_state="installed", task_id=None, error=None)
    elif latest is not None and latest.installation_state == "error":
        set_app(app_id, error=None)
    del app


def ensure_image(task: TaskContext, image: str) -> None:
    """Pull the app's image unless present, with the private registry's credentials when the image
    comes from that registry (platform_settings.registry)."""
    containers.ensure_image(image, log=task.log, auth_config=registry_settings.pull_auth(image))


def create_container(task: TaskContext, app: App, percent: int = 40, name: str | None = None) -> App:
    """Create and start the app's container from `app` (its manifest, limits, ports) and record
    it on the app row. `name` (a deploy: the new version beside the running one) starts it under
    that name and records nothing: the deploy switches the row once the new version is healthy."""
    manifest = app.manifest
    task.progress(percent, f"Getting image {manifest['dockerImage']}")
    ensure_image(task, manifest["dockerImage"])
    if addon_registry.declared(manifest):
        task.progress(percent + 10, "Reading the addons' settings")
    # Each database addon hands back its credentials (provisioning again if it had to be made).
    env = environment(app, addon_registry.env_of(app, task.log))
    mounts = [(m.source, m.target, m.read_only) for m in addon_registry.mounts_of(app)]
    mounts += volumes.binds_of(app.id)     # configure/mounts: each volume at /media/<name>
    task.progress(percent + 20, "Creating container")
    ports = {}
    for env_name, (container_port, proto) in manifests.declared_ports(manifest).items():
        if env_name in (app.port_bindings or {}):
            ports.setdefault(proto, {})[container_port] = app.port_bindings[env_name]
    # the app network, where the addon services (postgresql, mysql, redis-<id>) answer by name;
    # an app without such addons stays on the engine's default bridge, as before addons
    network = containers.app_network() if addon_registry.needs_network(manifest) else None
    created = containers.create_and_start(
        app.id, manifest["dockerImage"], env=env, mounts=mounts, network=network,
        extra_hosts=_dashboard_hosts(network),
        memory_limit=app.memory_limit or manifest.get("memoryLimit") or None,
        cpu_shares=app.cpu_shares,
        data_dir=apps.data_dir(app.id), http_port=manifest["httpPort"], host_port=app.host_port,
        tcp_ports=ports.get("tcp"), udp_ports=ports.get("udp"),
        # the app's own TCP/UDP ports are for the outside world, like the proxy's ports
        ports_ip=config.get().proxy_listen or "0.0.0.0",
        labels={containers.LABEL_INSTANCE: containers.instance_id()},
        command=(app.debug_mode or {}).get("cmd"), name=name)
    if name is None:
        set_app(app.id, container_id=created["id"], host_port=created["host_port"], run_state="running")
    app.host_port, app.container_id = created["host_port"], created["id"]
    return app


def wait_healthy(task: TaskContext, app: App, percent: int = 80) -> None:
    if app.debug_mode:  # in debug mode the app's own process may not run at all
        task.log("debug mode: not waiting for the health check")
        return
    task.progress(percent, f"Waiting for {app.manifest['healthCheckPath']} to answer")
    probe.wait_healthy(app.host_port, app.manifest["healthCheckPath"], timeout=120,
                       log=task.log, app_id=app.id)
    set_app(app.id, health="healthy", health_changed_at=utcnow())


def write_proxy(task: TaskContext, app: App, state: str = "running", percent: int = 95) -> None:
    task.progress(percent, f"Configuring reverse proxy for {apps.fqdn(app)}")
    spec = vhost_spec(app, state)
    reverse_proxy.write_app_vhost(**spec, certificate=domains.certificate_files)
    if state == "running":
        # Names on a letsencrypt-* domain get their certificate in a renewcerts task of their own:
        # the app is served with the fallback one meanwhile, and a refused order fails that task,
        # not the app's.
        queued = domains.acme_orders.request_for([spec["fqdn"], *spec["aliases"], *spec["redirects"]])
        if queued:
            task.log(f"certificate order queued as task {queued}")


def setup_addons(task: TaskContext, app: App, rollback: bool = False, percent: int = 25) -> None:
    """Provision the manifest's addons before the container starts. `rollback` (a fresh install):
    a failure removes what this call provisioned; the AddonError (naming the addon and why) then
    puts the app in `error` through run_app_task."""
    if addon_registry.declared(app.manifest):
        task.progress(percent, "Setting up addons")
        addon_registry.setup_app(app, task.log, rollback=rollback)


def bring_up(task: TaskContext, app: App, rollback_addons: bool = False) -> None:
    """Data folder, addons, image, container, health, vhost: the whole of an install, idempotent.
    `rollback_addons`: see setup_addons."""
    task.progress(10, "Creating data folder")
    containers.private_data_dir(apps.data_dir(app.id))  # <data>/apps and apps/<id> 0700
    task.progress(15, "Writing DNS records")  # before the vhost: an ACME order needs the names to resolve
    domains.dns_records.add(task.log, domains.dns_records.app_hosts(app))
    write_proxy(task, app, "installing", percent=20)
    setup_addons(task, app, rollback=rollback_addons)
    app = create_container(task, app)
    wait_healthy(task, app)
    write_proxy(task, app)
    task.progress(100, "Installed")
