"""App task steps shared by the app task bodies (apps.task_bodies) and the backup bodies: they run
in a task process (tasks.child) and do the Docker and nginx work.

Every body goes through `run_app_task`, which marks the app as busy with this task, and records the
outcome on the app: `installed` on success, `error` (with the message, the state that failed
and the task id, for repair) on any failure or stop. A process killed outright (SIGKILL,
server crash, timeout) cannot write that; apps.reconcile.reconcile_states does it afterwards.
"""
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator

import apps
import containers
import domains
import reverse_proxy
import volumes
from addons import registry as addon_registry
from apps import manifests, probe, proxy_config
from containers import ports as host_ports
from core import config
from models import utcnow
from models.apps import App
from platform_settings import registry as registry_settings
from tasks.context import TaskContext

log = logging.getLogger("berth.apps")

# A fresh install shows the "being installed" page only once it has taken this long (or right
# away when it has slow steps ahead: an image to pull, addons to set up). Most installs are done
# sooner, and the page would cost an nginx reload nobody sees: the name answered the catch-all
# 404 before the install and serves the app right after it.
INSTALLING_PAGE_AFTER = 2.0
_vhost_due: set[str] = set()    # apps of this task whose vhost was put off: an error still shows its page


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
        if app is not None and (app_id in _vhost_due or app_id in reverse_proxy.vhosts()):
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


def wait_healthy(task: TaskContext, app: App, percent: int = 80, slow: Callable[[], None] | None = None) -> None:
    """Wait for the health-check path. `slow` is called once if the wait goes on past
    INSTALLING_PAGE_AFTER seconds (bring_up puts up the "being installed" page then)."""
    if app.debug_mode:  # in debug mode the app's own process may not run at all
        task.log("debug mode: not waiting for the health check")
        return
    task.progress(percent, f"Waiting for {app.manifest['healthCheckPath']} to answer")
    probe.wait_healthy(app.host_port, app.manifest["healthCheckPath"], timeout=120,
                       log=task.log, app_id=app.id, slow=slow,
                       slow_after=INSTALLING_PAGE_AFTER if slow is not None else None)
    set_app(app.id, health="healthy", health_changed_at=utcnow())


def write_proxy(task: TaskContext, app: App, state: str = "running", percent: int = 95) -> None:
    task.progress(percent, f"Configuring reverse proxy for {apps.fqdn(app)}")
    spec = vhost_spec(app, state)
    reverse_proxy.write_app_vhost(**spec, certificate=domains.certificate_files)
    if state == "running":
        _order_certificates(task, spec)


def _order_certificates(task, spec):
    # Names on a letsencrypt-* domain get their certificate in a renewcerts task of their own:
    # the app is served with the fallback one meanwhile, and a refused order fails that task,
    # not the app's.
    queued = domains.acme_orders.request_for([spec["fqdn"], *spec["aliases"], *spec["redirects"]])
    if queued:
        task.log(f"certificate order queued as task {queued}")


class _VhostBeside(threading.Thread):
    """The app's "running" vhost written while the container starts (see _start_fresh). The
    certificate files are looked up here, before: the thread touches no database."""

    def __init__(self, spec: dict) -> None:
        super().__init__(name="vhost", daemon=True)
        names = [spec["fqdn"], *spec["aliases"], *spec["redirects"]]
        found = {name: domains.certificate_files(name) for name in names}
        self.spec, self.error = spec, None
        self.certificate = lambda name: found[name] if name in found else domains.certificate_files(name)

    def run(self) -> None:
        try:
            reverse_proxy.write_app_vhost(**self.spec, certificate=self.certificate)
        except BaseException as e:  # noqa: B902 - handed to the task's own thread
            self.error = e

    def result(self) -> None:
        self.join()
        if self.error is not None:
            raise self.error


def _start_fresh(task: TaskContext, app: App) -> App:
    """A fresh install of an image at hand: nginx takes the app's vhost (on a host port picked
    first) while the container starts and answers its health check, instead of after: an nginx
    reload is mostly waiting (nginx gives new workers 100 ms before it retires the old ones).
    Until the app answers, its name gets nginx's "not responding" page where it had the
    catch-all 404, and the "being installed" page once that takes INSTALLING_PAGE_AFTER; the app
    reads installed and healthy only once both are done, as before."""
    app.host_port = host_ports.free_port(reserved=host_ports.reserved_ports())
    spec = vhost_spec(app, "running")
    task.log(f"Configuring reverse proxy for {spec['fqdn']} while the container starts")
    vhost = _VhostBeside(spec)
    vhost.start()
    again = []      # the running vhost must be written (again) at the end

    def slow():
        vhost.result()  # the "being installed" page goes in after, never under, the running vhost
        again.append(True)
        task.log("The install takes a while: showing the \"being installed\" page meanwhile")
        reverse_proxy.write_app_vhost(**vhost_spec(app, "installing"), certificate=domains.certificate_files)
    try:
        try:
            app = create_container(task, app)
        except containers.ContainerError as exc:
            if "already allocated" not in str(exc) and "already in use" not in str(exc):
                raise
            vhost.result()  # the port was taken meanwhile: Berth picks another, the vhost follows
            again.append(True)
            app.host_port = None
            app = create_container(task, app)
        wait_healthy(task, app, slow=None if again else slow)
    finally:
        vhost.join()
    vhost.result()
    on_disk = reverse_proxy.vhosts().get(app.id) or {}
    # Written again as well when something rewrote it meanwhile: the start-up reconciliation, or
    # any sync of the vhosts from the app rows, shows a pending app as "being installed".
    if again or (on_disk.get("state"), on_disk.get("upstream_port")) != ("running", app.host_port):
        write_proxy(task, app)
    else:
        task.progress(95, f"Reverse proxy configured for {spec['fqdn']}")
        _order_certificates(task, spec)
    return app


def setup_addons(task: TaskContext, app: App, rollback: bool = False, percent: int = 25) -> None:
    """Provision the manifest's addons before the container starts. `rollback` (a fresh install):
    a failure removes what this call provisioned; the AddonError (naming the addon and why) then
    puts the app in `error` through run_app_task."""
    if addon_registry.declared(app.manifest):
        task.progress(percent, "Setting up addons")
        addon_registry.setup_app(app, task.log, rollback=rollback)


def _installing_page_now(app: App) -> bool:
    """Put up the "being installed" page before the work starts? Yes when the app has a vhost
    already (configure, update, repair, restore: it points at the container about to be replaced)
    or slow steps are ahead (an image to pull, addons to set up). A fresh install of an image at
    hand gets its running vhost while the container starts instead (_start_fresh), and the page
    only when the app takes INSTALLING_PAGE_AFTER seconds to answer."""
    return (app.id in reverse_proxy.vhosts() or bool(addon_registry.declared(app.manifest))
            or not containers.image_exists(app.manifest["dockerImage"]))


def bring_up(task: TaskContext, app: App, rollback_addons: bool = False) -> None:
    """Data folder, addons, image, container, health, vhost: the whole of an install, idempotent.
    `rollback_addons`: see setup_addons."""
    task.progress(10, "Creating data folder")
    containers.private_data_dir(apps.data_dir(app.id))  # <data>/apps and apps/<id> 0700
    task.progress(15, "Writing DNS records")  # before the vhost: an ACME order needs the names to resolve
    domains.dns_records.add(task.log, domains.dns_records.app_hosts(app))
    fresh = not _installing_page_now(app)
    if fresh:
        _vhost_due.add(app.id)
    else:
        write_proxy(task, app, "installing", percent=20)
    setup_addons(task, app, rollback=rollback_addons)
    if fresh and not app.debug_mode:
        app = _start_fresh(task, app)
    else:
        app = create_container(task, app)
        wait_healthy(task, app)
        write_proxy(task, app)
    _vhost_due.discard(app.id)
    task.progress(100, "Installed")
