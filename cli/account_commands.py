"""login, logout, status, whoami."""
import os

import click

from cli.client import ApiError, Client, normalise_server, print_json, read_saved, save


@click.command()
@click.argument("server_url", required=False)
@click.option("--username", "-u", help="asked when not given")
@click.option("--password", "-p", envvar="BERTH_PASSWORD", help="asked when not given (or BERTH_PASSWORD)")
@click.option("--totp", "totp_token", help="two-factor code (asked when the server needs one)")
@click.option("--token", "given_token", help="store this API token instead of logging in")
@click.pass_obj
def login(session, server_url, username, password, totp_token, given_token):
    """Log in to a Berth server and remember it (token in a file only you can read)."""
    server = normalise_server(server_url or session.server or click.prompt("Server"))
    client = Client(server, None, session.insecure)
    if given_token:
        client.token = given_token
        profile = client.get("/profile")
        token = given_token
    else:
        username = username or click.prompt("Username")
        password = password or click.prompt("Password", hide_input=True)
        body = {"username": username, "password": password}
        if totp_token:
            body["totpToken"] = totp_token
        try:
            token = client.post("/cloudron/login", body)["token"]
        except ApiError as e:
            if totp_token or "totp" not in str(e).lower():
                raise
            body["totpToken"] = click.prompt("Two-factor code")
            token = client.post("/cloudron/login", body)["token"]
        client.token = token
        profile = client.get("/profile")
    save(session.config_path, {"server": server, "token": token, "insecure": session.insecure})
    click.echo(f"Logged in to {server} as {profile.get('username')} ({profile.get('role')})")


@click.command()
@click.pass_obj
def logout(session):
    """Revoke the stored token on the server and forget it here."""
    saved = read_saved(session.config_path)
    if not saved.get("token"):
        click.echo("Not logged in")
        return
    try:
        Client(saved.get("server"), saved["token"], session.insecure).call("GET", "/cloudron/logout",
                                                                            params={"access_token": saved["token"]},
                                                                            raw=True)
    except ApiError:
        pass  # an expired token or a gone server: forgetting it here is what matters
    os.unlink(session.config_path)
    click.echo(f"Logged out of {saved.get('server')}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="print the API's JSON")
@click.pass_obj
def status(session, as_json):
    """The server, its version, and who you are there."""
    client = session.client
    info = client.get("/cloudron/status")
    profile = client.get("/profile")
    if as_json:
        print_json({"server": client.server, "status": info, "profile": profile})
        return
    click.echo(f"Server:  {client.server}")
    click.echo(f"Version: {info.get('version', '?')}")
    click.echo(f"User:    {profile.get('username')} ({profile.get('role')})")


COMMANDS = (login, logout, status)
