"""sendmail and recvmail: the app's mail identity on Berth's mail server, as Cloudron's variables.

The identity (address, passwords, the mailbox) belongs to the mail package (mail/app_mail.py says
how it works); this module only hands its variables to the app through two functions:

    mail.app_mail.app_mailbox_credentials(app_id, kind, network) -> dict[str, str]
        the CLOUDRON_MAIL_* variables below, provisioning the identity on first use
    mail.app_mail.remove_app_mailbox(app_id, kind)      on uninstall (or an update dropping it)

`network` is the Docker network the app's container will join: the mail server listens on the
host, which a container reaches at its network's gateway address.

An app declaring these addons is never refused because its domain has no mail enabled (Cloudron
gives the variables regardless); see mail/app_mail.py for what then works.
"""
from collections.abc import Callable
from typing import Any

import containers
from mail import app_mail
from models.apps import App

SENDMAIL_VARS = ("CLOUDRON_MAIL_SMTP_SERVER", "CLOUDRON_MAIL_SMTP_PORT", "CLOUDRON_MAIL_SMTPS_PORT",
                 "CLOUDRON_MAIL_SMTP_USERNAME", "CLOUDRON_MAIL_SMTP_PASSWORD", "CLOUDRON_MAIL_FROM",
                 "CLOUDRON_MAIL_DOMAIN")
RECVMAIL_VARS = ("CLOUDRON_MAIL_IMAP_SERVER", "CLOUDRON_MAIL_IMAP_PORT", "CLOUDRON_MAIL_IMAPS_PORT",
                 "CLOUDRON_MAIL_IMAP_USERNAME", "CLOUDRON_MAIL_IMAP_PASSWORD", "CLOUDRON_MAIL_TO",
                 "CLOUDRON_MAIL_DOMAIN")


def _network(app: App) -> str | None:
    """The network create_container puts the app on (apps.task_steps): the app network when a
    database addon needs it, else the engine's default bridge."""
    from addons import registry  # registry imports this module
    return containers.app_network() if registry.needs_network(app.manifest) else None


class MailAddon:
    """sendmail or recvmail (`kind`), giving exactly the variables of its kind."""

    def __init__(self, kind: str, names: tuple[str, ...]) -> None:
        self.kind = kind
        self.names = names

    def env(self, app: App, options: dict, log: Callable[[str], Any]) -> dict[str, str]:
        given = app_mail.app_mailbox_credentials(app.id, self.kind, _network(app))
        missing = [n for n in self.names if n not in given]
        if missing:
            raise RuntimeError(f"the mail server gave no {', '.join(missing)}")
        log(f"{self.kind}: the app's mail address is {given[self.names[5]]}")   # never the password
        return {n: str(given[n]) for n in self.names}

    def teardown(self, app: App, options: dict, log: Callable[[str], Any]) -> None:
        app_mail.remove_app_mailbox(app.id, self.kind)


SENDMAIL = MailAddon("sendmail", SENDMAIL_VARS)
RECVMAIL = MailAddon("recvmail", RECVMAIL_VARS)
