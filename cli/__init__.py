"""`berth`: the server commands (serve, migrate, api-coverage) and a client of Berth's API for
people and scripts (login, apps, users, backups, tasks, …). See README.md, "The berth command".
"""
import click

from cli import account_commands, admin_commands, app_commands, app_shell, server
from cli.client import Client, default_config_path, read_saved


class Session:
    """What every client command needs, resolved once: options, environment, the login file."""

    def __init__(self, server_url, token, config_path, insecure):
        self.config_path = config_path
        saved = read_saved(config_path)
        self.server = server_url or saved.get("server")
        self.token = token or (saved.get("token") if not server_url or server_url == saved.get("server") else None)
        self.insecure = insecure or bool(saved.get("insecure"))
        self._client = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.server, self.token, self.insecure)
        return self._client


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--server", envvar="BERTH_SERVER", help="Berth server URL (default: the one of `berth login`)")
@click.option("--token", envvar="BERTH_TOKEN", help="API token (default: the one of `berth login`)")
@click.option("--config", "config_path", envvar="BERTH_CLI_CONFIG", default=default_config_path,
              show_default="~/.config/berth/cli.json", help="where `berth login` keeps the server and token")
@click.option("--insecure", is_flag=True, help="accept the server's certificate without checking it")
@click.version_option(package_name="berth", prog_name="berth")
@click.pass_context
def main(ctx, server, token, config_path, insecure):
    """Berth: self-hosting control plane. Server commands and an API client."""
    ctx.obj = Session(server, token, config_path, insecure)


for module in (server, account_commands, app_commands, app_shell, admin_commands):
    for command in module.COMMANDS:
        main.add_command(command)
