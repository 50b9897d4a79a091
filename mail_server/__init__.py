"""Berth's mail server: Postfix, Dovecot and rspamd, configured and run by Berth under the data dir.

The choice (also in the README; rspamd rather than OpenDKIM + SpamAssassin because it is one
milter for both jobs and runs from Debian's package as is):
- Postfix is the MTA: port 25 for incoming mail, port 587 for submission (SASL through Dovecot),
  outgoing mail direct or through the mail domain's relay (per-sender relay and SASL maps).
- Dovecot serves IMAP (143, STARTTLS) and IMAPS (993), delivers over LMTP into Maildirs under
  <data dir>/mail/vmail, and is the SASL service Postfix asks. It never holds a password: its passdb
  is the checkpassword program the snapshot names (`authProgram`, Berth's `mail.checkpassword`).
- rspamd (Debian) is the one milter that scores incoming mail (the custom rules are handed to its
  SpamAssassin-rules module), skips the allow list, and DKIM-signs outgoing mail (selector
  "cloudron", a 2048-bit key per domain that Berth generates: dkim.py).

All three are Berth-managed instances: their configuration, queue, sockets, pid files, Maildirs and
logs live under <data dir>/mail (layout.py), so they run beside, and never touch, a system Postfix
in /etc/postfix or a system Dovecot, and several Berth servers on one machine each run their own on
their own ports. The daemons see that folder through a bind mount at /run/berth-mail/<id> (the data
dir is 0700 root and they drop to their own users; layout.py says more). Dovecot's auth process
runs as root because the checkpassword program reads Berth's database.

Like the managed nginx (reverse_proxy/), every change is rendered into a new configuration folder,
checked by the programs themselves (`postfix check` and `postconf`, `doveconf -x -n`, `rspamadm
configtest`), swapped in with one rename of the `current` symlink, then the processes are started
or reloaded (only those whose files changed); a refused configuration raises MailServerError with
the checker's words and the working one keeps serving. One change at a time (a file lock). The
processes daemonise, so mail keeps flowing while Berth restarts; Berth finds them again by their
pid files (control.py, processes.py).

Not applied: each domain's `banner` (the text Cloudron's Haraka appends to outgoing mail). Postfix
has no footer setting and rspamd 3.4 has no footer module (only a Lua library function a custom
Lua rule would call, with the milter rewriting the body), so the snapshot carries it and it stays
stored and served by the API, unused by the server (said in the README).
"""
import os

from core import config
from mail_server.errors import MailServerError  # noqa: F401 - public name

__all__ = ["MailServerError", "MailServer", "server", "apply", "status", "stop", "restart", "logs",
           "maildir_usage", "delete_maildir", "delivery_events", "test_relay", "dkim_public_key", "DKIM_SELECTOR"]

DKIM_SELECTOR = "cloudron"


class MailServer:
    """The mail server of one data dir on the given ports. `listen` is the address the mail ports
    bind ("" = every interface; tests use 127.0.0.1)."""

    def __init__(self, data_dir: str, smtp_port: int, submission_port: int, imap_port: int,
                 imaps_port: int, listen: str = "", resolver: str = ""):
        from mail_server.layout import Layout
        self.data_dir = os.path.abspath(data_dir)
        self.ports = {"smtp": int(smtp_port), "submission": int(submission_port),
                      "imap": int(imap_port), "imaps": int(imaps_port)}
        self.listen = listen
        self.resolver = resolver
        self.layout = Layout.of(self.data_dir)

    def apply(self, snapshot: dict) -> None:
        """Render, check, swap in and (re)load the configuration of `snapshot` (see module docs);
        stops everything when no mail domain is enabled. MailServerError with the checker's words
        when a program refuses the result (the working configuration then stays)."""
        from mail_server import control
        control.apply(self, snapshot)

    def status(self) -> dict:
        """{"running": every process up, "processes": {name: {"running", "pid"}}, "error": the last
        failure to apply or start, or None}."""
        from mail_server import processes
        return processes.status(self.layout)

    def stop(self) -> None:
        """Stop every process of this mail server (they are found by their pid files)."""
        from mail_server import control
        control.stop(self)

    def restart(self) -> None:
        """Stop, then start again with the working configuration (if any domain is enabled)."""
        from mail_server import control
        control.restart(self)

    def logs(self) -> dict[str, str]:
        """{name: path of the log file} of each process (postfix, dovecot, rspamd), as Berth reads
        them (inside the data dir, not through the daemons' mount)."""
        return {name: path.replace(self.layout.live, self.layout.root, 1)
                for name, path in self.layout.log_files().items()}

    def maildir_usage(self) -> dict[str, int]:
        """{address: bytes on disk} of every Maildir."""
        from mail_server import events
        return events.maildir_usage(self.layout)

    def delete_maildir(self, address: str) -> bool:
        """Remove the Maildir of `address` (after its mailbox was deleted with deleteMails). True
        if there was one."""
        from mail_server import events
        return events.delete_maildir(self.layout, address)

    def delivery_events(self, since: float | None = None) -> list[dict]:
        """Delivery events parsed from the mail log, oldest first (see events.py)."""
        from mail_server import events
        return events.delivery_events(self.layout, since)

    def dkim_public_key(self, domain: str) -> str:
        """The DKIM public key of `domain` (base64 DER, the `p=` of the TXT record), generated on
        first need."""
        from mail_server import dkim
        return dkim.public_key(self.layout, domain)


def server() -> MailServer:
    """The mail server of this Berth (config.get())."""
    cfg = config.get()
    return MailServer(cfg.data_dir, cfg.mail_smtp_port, cfg.mail_submission_port, cfg.mail_imap_port,
                      cfg.mail_imaps_port, resolver=cfg.mail_resolver)


def apply(snapshot: dict) -> None:
    server().apply(snapshot)


def status() -> dict:
    return server().status()


def stop() -> None:
    server().stop()


def restart() -> None:
    server().restart()


def logs() -> dict[str, str]:
    return server().logs()


def maildir_usage() -> dict[str, int]:
    return server().maildir_usage()


def delivery_events(since: float | None = None) -> list[dict]:
    return server().delivery_events(since)


def delete_maildir(address: str) -> bool:
    return server().delete_maildir(address)


def dkim_public_key(domain: str) -> str:
    return server().dkim_public_key(domain)


def test_relay(relay: dict) -> None:
    """Connect to an external relay ({"host", "port", "username", "password", "tls"}), do STARTTLS
    or implicit TLS and AUTH as configured; MailServerError with the relay's own words when any
    step fails. Nothing is sent."""
    from mail_server import relay_check
    relay_check.test_relay(relay)
