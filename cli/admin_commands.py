"""Commands on the server's users, groups, domains, mail, backups, tasks, settings and event log.
Each read command prints a short table, or the API's JSON with --json."""
import json

import click

from cli import progress
from cli.app_commands import _table, json_option, quiet_option, wait_option
from cli.client import ApiError, print_json


def _show(data, as_json, key, headers, row):
    if as_json:
        return print_json(data)
    _table(headers, [row(item) for item in data[key]])


def _user_id(client, ref):
    for user in client.get("/users", params={"per_page": 5000})["users"]:
        if ref in (user["id"], user.get("username"), user.get("email")):
            return user["id"]
    raise ApiError(f"No user {ref!r}")


def _group_id(client, ref):
    for group in client.get("/groups")["groups"]:
        if ref in (group["id"], group["name"]):
            return group["id"]
    raise ApiError(f"No group {ref!r}")


# ---- users ----------------------------------------------------------------------------------

@click.group()
def users():
    """Users of the server."""


@users.command("list")
@json_option
@click.pass_obj
def users_list(session, as_json):
    data = session.client.get("/users", params={"per_page": 5000})
    _show(data, as_json, "users", ("ID", "USERNAME", "EMAIL", "ROLE", "ACTIVE"),
          lambda u: (u["id"], u.get("username"), u.get("email"), u.get("role"), u.get("active")))


@users.command("add")
@click.option("--email", required=True)
@click.option("--username")
@click.option("--display-name")
@click.option("--role", type=click.Choice(["user", "usermanager", "mailmanager", "admin"]), default="user",
              show_default=True)
@click.option("--password", help="asked when --ask-password; otherwise the user is invited")
@json_option
@click.pass_obj
def users_add(session, email, username, display_name, role, password, as_json):
    body = {"email": email, "username": username, "displayName": display_name, "role": role, "password": password}
    user = session.client.post("/users", {k: v for k, v in body.items() if v is not None})
    print_json(user) if as_json else click.echo(f"User {user['id']} added")


@users.command("remove")
@click.argument("user")
@click.pass_obj
def users_remove(session, user):
    client = session.client
    client.delete(f"/users/{_user_id(client, user)}")
    click.echo(f"User {user} removed")


# ---- groups ---------------------------------------------------------------------------------

@click.group()
def groups():
    """Groups of users."""


@groups.command("list")
@json_option
@click.pass_obj
def groups_list(session, as_json):
    _show(session.client.get("/groups"), as_json, "groups", ("ID", "NAME", "MEMBERS"),
          lambda g: (g["id"], g["name"], len(g.get("userIds") or [])))


@groups.command("add")
@click.argument("name")
@click.pass_obj
def groups_add(session, name):
    group = session.client.post("/groups", {"name": name})
    click.echo(f"Group {group['id']} added")


@groups.command("remove")
@click.argument("group")
@click.pass_obj
def groups_remove(session, group):
    client = session.client
    client.delete(f"/groups/{_group_id(client, group)}")
    click.echo(f"Group {group} removed")


@groups.command("members")
@click.argument("group")
@click.argument("members", nargs=-1)
@click.pass_obj
def groups_members(session, group, members):
    """Set the group's members (usernames, emails or ids)."""
    client = session.client
    client.put(f"/groups/{_group_id(client, group)}/members", {"userIds": [_user_id(client, m) for m in members]})
    click.echo(f"Group {group} has {len(members)} members")


# ---- domains --------------------------------------------------------------------------------

@click.group()
def domains():
    """Domains and their DNS provider."""


@domains.command("list")
@json_option
@click.pass_obj
def domains_list(session, as_json):
    _show(session.client.get("/domains"), as_json, "domains", ("DOMAIN", "PROVIDER"),
          lambda d: (d["domain"], d.get("provider")))


@domains.command("add")
@click.argument("domain")
@click.option("--provider", default="noop", show_default=True, help="DNS provider (e.g. rfc2136, cloudflare, noop)")
@click.option("--config", "config_json", default="{}", help="provider config as JSON")
@click.pass_obj
def domains_add(session, domain, provider, config_json):
    session.client.post("/domains", {"domain": domain, "provider": provider, "config": _json_arg(config_json)})
    click.echo(f"Domain {domain} added")


@domains.command("remove")
@click.argument("domain")
@click.pass_obj
def domains_remove(session, domain):
    session.client.delete(f"/domains/{domain}")
    click.echo(f"Domain {domain} removed")


def _json_arg(text):
    try:
        return json.loads(text)
    except ValueError as e:
        raise click.BadParameter(f"not JSON: {e}") from None


# ---- mail -----------------------------------------------------------------------------------

@click.group()
def mail():
    """Mailboxes, aliases and mailing lists of a mail domain."""


@mail.command("mailboxes")
@click.argument("domain")
@json_option
@click.pass_obj
def mail_mailboxes(session, domain, as_json):
    _show(session.client.get(f"/mail/{domain}/mailboxes", params={"per_page": 1000}), as_json, "mailboxes",
          ("NAME", "OWNER", "ACTIVE"), lambda m: (m["name"], m.get("ownerId"), m.get("active")))


@mail.command("add-mailbox")
@click.argument("domain")
@click.argument("name")
@click.option("--owner", required=True, help="user (username, email or id)")
@click.pass_obj
def mail_add_mailbox(session, domain, name, owner):
    client = session.client
    client.post(f"/mail/{domain}/mailboxes", {"name": name, "ownerId": _user_id(client, owner), "ownerType": "user"})
    click.echo(f"Mailbox {name}@{domain} added")


@mail.command("remove-mailbox")
@click.argument("domain")
@click.argument("name")
@click.pass_obj
def mail_remove_mailbox(session, domain, name):
    session.client.delete(f"/mail/{domain}/mailboxes/{name}")
    click.echo(f"Mailbox {name}@{domain} removed")


@mail.command("aliases")
@click.argument("domain")
@click.argument("name")
@click.argument("aliases", nargs=-1)
@click.option("--set", "replace", is_flag=True, help="replace the aliases with the ones given (name@domain)")
@json_option
@click.pass_obj
def mail_aliases(session, domain, name, aliases, replace, as_json):
    """Show (or --set) the aliases of a mailbox."""
    client = session.client
    if replace:
        pairs = [_address(a) for a in aliases]
        client.put(f"/mail/{domain}/mailboxes/{name}/aliases", {"aliases": pairs})
    data = client.get(f"/mail/{domain}/mailboxes/{name}/aliases")
    _show(data, as_json, "aliases", ("ALIAS",), lambda a: (f"{a['name']}@{a['domain']}",))


def _address(text):
    name, sep, domain = text.partition("@")
    if not sep or not name or not domain:
        raise click.BadParameter(f"{text!r} is not name@domain", param_hint="ALIASES")
    return {"name": name, "domain": domain}


@mail.command("lists")
@click.argument("domain")
@json_option
@click.pass_obj
def mail_lists(session, domain, as_json):
    _show(session.client.get(f"/mail/{domain}/lists", params={"per_page": 1000}), as_json, "lists",
          ("NAME", "MEMBERS"), lambda m: (m["name"], ", ".join(m.get("members") or [])))


@mail.command("add-list")
@click.argument("domain")
@click.argument("name")
@click.argument("members", nargs=-1, required=True)
@click.pass_obj
def mail_add_list(session, domain, name, members):
    session.client.post(f"/mail/{domain}/lists", {"name": name, "members": list(members)})
    click.echo(f"List {name}@{domain} added")


@mail.command("remove-list")
@click.argument("domain")
@click.argument("name")
@click.pass_obj
def mail_remove_list(session, domain, name):
    session.client.delete(f"/mail/{domain}/lists/{name}")
    click.echo(f"List {name}@{domain} removed")


# ---- platform backups -------------------------------------------------------------------------

@click.group()
def backups():
    """Backups of the whole server (one app's: `berth backup`)."""


@backups.command("create")
@wait_option
@quiet_option
@click.pass_obj
def backups_create(session, wait, quiet):
    client = session.client
    progress.started(client, client.post("/backups/create"), wait, quiet, "Backing up")


@backups.command("list")
@json_option
@click.pass_obj
def backups_list(session, as_json):
    _show(session.client.get("/backups", params={"per_page": 100}), as_json, "backups",
          ("ID", "TYPE", "CREATED", "STATE", "SIZE"),
          lambda b: (b["id"], b.get("type"), b.get("creationTime"), b.get("state"), b.get("size")))


@backups.command("download")
@click.argument("backup_id")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), required=True)
@click.pass_obj
def backups_download(session, backup_id, output):
    total = 0
    with session.client.stream("GET", f"/backups/{backup_id}/download") as response, open(output, "wb") as f:
        for chunk in response.iter_bytes():
            f.write(chunk)
            total += len(chunk)
    click.echo(f"{total} bytes written to {output}")


@backups.command("config")
@click.option("--set", "new_config", help="replace the backup config with this JSON")
@json_option
@click.pass_obj
def backups_config(session, new_config, as_json):
    client = session.client
    if new_config:
        client.post("/settings/backup_config", _json_arg(new_config))
    print_json(client.get("/settings/backup_config"))


# ---- tasks ----------------------------------------------------------------------------------

@click.group()
def tasks():
    """Long operations: installs, backups, restores…"""


@tasks.command("list")
@click.option("--type", "task_type", help="only tasks of this type")
@json_option
@click.pass_obj
def tasks_list(session, task_type, as_json):
    data = session.client.get("/tasks", params={"type": task_type, "per_page": 50})
    _show(data, as_json, "tasks", ("ID", "TYPE", "STATE", "PERCENT", "MESSAGE"),
          lambda t: (t["id"], t["type"], _task_state(t), t.get("percent"), (t.get("message") or "")[:50]))


def _task_state(task):
    if task.get("pending"):
        return "pending"
    if task.get("active"):
        return "running"
    return "success" if task.get("success") else "failed"


@tasks.command("logs")
@click.argument("task_id")
@click.option("--follow", "-f", is_flag=True, help="follow until the task ends")
@click.option("--lines", "-n", type=int, default=-1, show_default=True)
@click.pass_obj
def tasks_logs(session, task_id, follow, lines):
    client = session.client
    if follow:
        return progress.follow(client, f"/tasks/{task_id}/logstream", lines)
    click.echo(client.call("GET", f"/tasks/{task_id}/logs", params={"lines": lines, "format": "plain"},
                           raw=True).text, nl=False)


@tasks.command("wait")
@click.argument("task_id")
@quiet_option
@click.pass_obj
def tasks_wait(session, task_id, quiet):
    """Wait for a task with a progress bar; exits 1 when it fails."""
    task = progress.wait_task(session.client, task_id, quiet)
    if not quiet:
        click.echo(task.get("message") or "Done")


@tasks.command("stop")
@click.argument("task_id")
@click.pass_obj
def tasks_stop(session, task_id):
    session.client.post(f"/tasks/{task_id}/stop")
    click.echo(f"Task {task_id} asked to stop")


# ---- settings and event log -----------------------------------------------------------------

@click.group()
def settings():
    """Server settings (the /settings/<name> routes, e.g. time_zone, backup_config)."""


@settings.command("get")
@click.argument("name")
@click.pass_obj
def settings_get(session, name):
    print_json(session.client.get(f"/settings/{name}"))


@settings.command("set")
@click.argument("name")
@click.argument("value_json")
@click.pass_obj
def settings_set(session, name, value_json):
    """Set a setting to a JSON body, e.g. `berth settings set time_zone '{"timeZone": "UTC"}'`."""
    print_json(session.client.post(f"/settings/{name}", _json_arg(value_json)))


@click.command()
@click.option("--search", help="only events matching this text")
@click.option("--action", help="only this action (e.g. app.install)")
@click.option("--limit", type=int, default=25, show_default=True)
@json_option
@click.pass_obj
def eventlog(session, search, action, limit, as_json):
    """The event log, newest first."""
    data = session.client.get("/cloudron/eventlog", params={"search": search, "action": action, "per_page": limit})
    _show(data, as_json, "eventlogs", ("TIME", "ACTION", "BY"),
          lambda e: (e.get("creationTime"), e.get("action"), (e.get("source") or {}).get("username", "")))


COMMANDS = (users, groups, domains, mail, backups, tasks, settings, eventlog)
