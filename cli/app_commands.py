"""Commands on apps, in the style of Cloudron's CLI: `berth install`, `berth logs -f --app wiki`…
An app is named by its id, its location (subdomain) or its full domain name."""
import json
import os

import click

from cli import progress
from cli.client import ApiError, print_json

app_option = click.option("--app", "-a", "app_ref", required=True, envvar="BERTH_APP",
                          help="app id, location or domain name (or BERTH_APP)")
json_option = click.option("--json", "as_json", is_flag=True, help="print the API's JSON")
wait_option = click.option("--wait/--no-wait", default=True, show_default=True,
                           help="follow the task to its end (progress bar) or return at once")
quiet_option = click.option("--quiet", "-q", is_flag=True, help="no progress output")


def resolve(client, ref: str) -> dict:
    apps = client.get("/apps")["apps"]
    for key in ("id", "fqdn", "location"):
        found = [a for a in apps if a.get(key) == ref]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise ApiError(f"{ref!r} names several apps: use the app id or full domain name")
    raise ApiError(f"No app {ref!r} (see `berth list`)")


def _pairs(values, option) -> dict:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint=option)
        out[key] = value
    return out


def _manifest(path, image):
    manifest = None
    if path is None and os.path.exists("CloudronManifest.json"):
        path = "CloudronManifest.json"
    if path:
        try:
            with open(path) as f:
                manifest = json.load(f)
        except (OSError, ValueError) as e:
            raise click.BadParameter(f"cannot read {path}: {e}", param_hint="--manifest") from None
    if image:
        manifest = dict(manifest or {"manifestVersion": 2, "id": image.split(":")[0].replace("/", "."),
                                     "version": "1.0.0", "title": image, "httpPort": 80,
                                     "healthCheckPath": "/"})
        manifest["dockerImage"] = image
    return manifest


@click.command("list")
@json_option
@click.pass_obj
def list_apps(session, as_json):
    """Installed apps."""
    apps = session.client.get("/apps")
    if as_json:
        return print_json(apps)
    rows = [(a["id"], a.get("fqdn", ""), a.get("manifest", {}).get("title", ""), a.get("installationState", ""),
             a.get("runState", ""), a.get("health") or "") for a in apps["apps"]]
    _table(("ID", "DOMAIN", "TITLE", "STATE", "RUN", "HEALTH"), rows)


@click.command()
@app_option
@json_option
@click.pass_obj
def info(session, app_ref, as_json):
    """One app in detail."""
    app = session.client.get(f"/apps/{resolve(session.client, app_ref)['id']}")
    if as_json:
        return print_json(app)
    manifest = app.get("manifest") or {}
    for label, value in (("Id", app["id"]), ("Domain", app.get("fqdn")), ("Title", manifest.get("title")),
                         ("Version", manifest.get("version")), ("Image", manifest.get("dockerImage")),
                         ("State", app.get("installationState")), ("Run state", app.get("runState")),
                         ("Health", app.get("health"))):
        click.echo(f"{label + ':':<11}{value if value is not None else ''}")


@click.command()
@click.option("--manifest", "manifest_path", type=click.Path(dir_okay=False), help="CloudronManifest.json")
@click.option("--image", help="Docker image (sets the manifest's dockerImage)")
@click.option("--appstore-id", help="install from the app catalog: ID or ID@VERSION")
@click.option("--location", "-l", required=True, help="subdomain ('' for the bare domain)")
@click.option("--domain", "-d", help="default: the first domain of the server")
@click.option("--env", "-e", multiple=True, help="NAME=VALUE (repeatable)")
@click.option("--port", "-p", multiple=True, help="ENV_NAME=HOST_PORT for a TCP/UDP port (repeatable)")
@wait_option
@quiet_option
@json_option
@click.pass_obj
def install(session, manifest_path, image, appstore_id, location, domain, env, port, wait, quiet, as_json):
    """Install an app from a manifest, an image or the app catalog."""
    client = session.client
    body = {"location": location, "domain": domain or _first_domain(client), "accessRestriction": None}
    if appstore_id:
        body["appStoreId"] = appstore_id
    else:
        manifest = _manifest(manifest_path, image)
        if manifest is None:
            raise click.UsageError("give --manifest, --image or --appstore-id")
        body["manifest"] = manifest
    if env:
        body["env"] = _pairs(env, "--env")
    if port:
        body["portBindings"] = {k: int(v) for k, v in _pairs(port, "--port").items()}
    answer = client.post("/apps/install", body)
    if not quiet and not as_json:
        click.echo(f"App {answer['id']} is being installed")
    task = progress.started(client, answer, wait, quiet or as_json, "Installing")
    if as_json:
        print_json({**answer, "task": task} if wait else answer)


def _first_domain(client) -> str:
    domains = client.get("/domains")["domains"]
    if not domains:
        raise ApiError("The server has no domain yet: add one (`berth domains add`) or give --domain")
    return domains[0]["domain"]


@click.command()
@app_option
@click.option("--location", "-l", help="new subdomain")
@click.option("--domain", "-d", help="new domain")
@click.option("--env", "-e", multiple=True, help="NAME=VALUE: replaces the app's environment (repeatable)")
@click.option("--memory-limit", type=int, help="bytes (0 = the manifest's default)")
@wait_option
@quiet_option
@click.pass_obj
def configure(session, app_ref, location, domain, env, memory_limit, wait, quiet):
    """Change an app's location, environment or memory limit (each as a task)."""
    client = session.client
    app = resolve(client, app_ref)
    changes = []
    if location is not None or domain is not None:
        changes.append(("location", {"location": app.get("location") if location is None else location,
                                     "domain": domain or app.get("domain")}))
    if env:
        changes.append(("env", {"env": _pairs(env, "--env")}))
    if memory_limit is not None:
        changes.append(("memory_limit", {"memoryLimit": memory_limit}))
    if not changes:
        raise click.UsageError("nothing to change: give --location, --domain, --env or --memory-limit")
    for route, body in changes:
        progress.started(client, client.post(f"/apps/{app['id']}/configure/{route}", body), wait, quiet,
                         f"Configuring {route}")


def _lifecycle(action, doc):
    @click.command(action, help=doc)
    @app_option
    @wait_option
    @quiet_option
    @click.pass_obj
    def command(session, app_ref, wait, quiet):
        client = session.client
        app = resolve(client, app_ref)
        progress.started(client, client.post(f"/apps/{app['id']}/{action}"), wait, quiet, action.capitalize())
    return command


start = _lifecycle("start", "Start an app.")
stop = _lifecycle("stop", "Stop an app.")
restart = _lifecycle("restart", "Restart an app.")


@click.command()
@app_option
@click.option("--yes", is_flag=True, help="do not ask")
@wait_option
@quiet_option
@click.pass_obj
def uninstall(session, app_ref, yes, wait, quiet):
    """Uninstall an app (its data is removed; app backups stay)."""
    client = session.client
    app = resolve(client, app_ref)
    if not yes:
        click.confirm(f"Uninstall {app.get('fqdn') or app['id']}?", abort=True)
    progress.started(client, client.post(f"/apps/{app['id']}/uninstall"), wait, quiet, "Uninstalling")


@click.command()
@app_option
@click.option("--manifest", "manifest_path", type=click.Path(dir_okay=False))
@click.option("--image", help="new Docker image")
@click.option("--appstore-id", help="ID@VERSION from the app catalog")
@click.option("--no-backup", is_flag=True, help="skip the backup taken before the update")
@click.option("--force", is_flag=True, help="update even when the manifest's checks would refuse")
@wait_option
@quiet_option
@click.pass_obj
def update(session, app_ref, manifest_path, image, appstore_id, no_backup, force, wait, quiet):
    """Update an app to a new manifest, image or catalog version."""
    client = session.client
    app = resolve(client, app_ref)
    body = {"skipBackup": no_backup, "force": force}
    if appstore_id:
        body["appStoreId"] = appstore_id
    else:
        manifest = _manifest(manifest_path, None)
        if image:
            manifest = dict(manifest or client.get(f"/apps/{app['id']}")["manifest"], dockerImage=image)
        if manifest is None:
            raise click.UsageError("give --manifest, --image or --appstore-id")
        body["manifest"] = manifest
    progress.started(client, client.post(f"/apps/{app['id']}/update", body), wait, quiet, "Updating")


@click.command()
@app_option
@click.option("--follow", "-f", is_flag=True, help="keep printing new lines (reconnects by itself)")
@click.option("--lines", "-n", type=int, default=100, show_default=True, help="lines of history (-1: all)")
@json_option
@click.pass_obj
def logs(session, app_ref, follow, lines, as_json):
    """An app's log."""
    client = session.client
    app = resolve(client, app_ref)
    if follow:
        return progress.follow(client, f"/apps/{app['id']}/logstream", lines, plain=not as_json)
    response = client.call("GET", f"/apps/{app['id']}/logs",
                           params={"lines": lines, "format": "json" if as_json else "short"}, raw=True)
    click.echo(response.text, nl=False)


@click.group()
def backup():
    """Backups of one app (platform backups: `berth backups`)."""


@backup.command("create")
@app_option
@wait_option
@quiet_option
@click.pass_obj
def backup_create(session, app_ref, wait, quiet):
    """Back the app up now."""
    client = session.client
    app = resolve(client, app_ref)
    progress.started(client, client.post(f"/apps/{app['id']}/backup"), wait, quiet, "Backing up")


@backup.command("list")
@app_option
@json_option
@click.pass_obj
def backup_list(session, app_ref, as_json):
    """The app's backups, newest first."""
    client = session.client
    found = client.get(f"/apps/{resolve(client, app_ref)['id']}/backups", params={"per_page": 100})
    if as_json:
        return print_json(found)
    _table(("ID", "CREATED", "VERSION", "SIZE"),
           [(b["id"], b.get("creationTime", ""), b.get("packageVersion") or b.get("version", ""), b.get("size", ""))
            for b in found["backups"]])


def _backup_id(client, app_id, given):
    if given:
        return given
    found = client.get(f"/apps/{app_id}/backups", params={"per_page": 1})["backups"]
    if not found:
        raise ApiError("The app has no backup yet (`berth backup create --app …`)")
    return found[0]["id"]


@click.command()
@app_option
@click.option("--backup", "backup_id", help="backup id (default: the newest)")
@wait_option
@quiet_option
@click.pass_obj
def restore(session, app_ref, backup_id, wait, quiet):
    """Restore an app from one of its backups."""
    client = session.client
    app = resolve(client, app_ref)
    body = {"backupId": _backup_id(client, app["id"], backup_id)}
    progress.started(client, client.post(f"/apps/{app['id']}/restore", body), wait, quiet, "Restoring")


@click.command()
@app_option
@click.option("--backup", "backup_id", help="backup id (default: the newest)")
@click.option("--location", "-l", required=True, help="subdomain of the copy")
@click.option("--domain", "-d", help="default: the app's domain")
@wait_option
@quiet_option
@click.pass_obj
def clone(session, app_ref, backup_id, location, domain, wait, quiet):
    """Make a new app from one of an app's backups."""
    client = session.client
    app = resolve(client, app_ref)
    body = {"backupId": _backup_id(client, app["id"], backup_id), "location": location,
            "domain": domain or app.get("domain")}
    answer = client.post(f"/apps/{app['id']}/clone", body)
    if not quiet:
        click.echo(f"Cloning into app {answer['id']}")
    progress.started(client, answer, wait, quiet, "Cloning")


def _table(headers, rows) -> None:
    rows = [tuple("" if v is None else str(v) for v in row) for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    for row in [headers, *rows]:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


COMMANDS = (list_apps, info, install, configure, start, stop, restart, uninstall, update, logs, backup,
            restore, clone)
