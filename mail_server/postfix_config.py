"""Postfix's main.cf and master.cf for one Berth mail server.

Mail for the enabled domains is virtual: accepted only for addresses the tables know (everything
else gets 550 at RCPT time: smtpd_reject_unlisted_recipient), aliases and lists expand through
virtual_alias_maps, and delivery goes to Dovecot over LMTP. Nothing is delivered to local Unix
users. Sockets and tables are named relative to the queue directory or opened before the daemons
drop privileges (see layout.py for why).
"""
import os

from mail_server.layout import POSTFIX_DATA, Layout
from mail_server.maps import Tables

# Services every Postfix needs, as Debian ships them but never chrooted (the queue is private to
# this instance) and with postlogd, which writes maillog_file (there may be no syslog here).
STANDARD_SERVICES = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
  -o syslog_name=postfix/$service_name
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
relay_smtp unix -       -       n       -       -       smtp
  -o syslog_name=postfix/relay
relay_smtps unix -      -       n       -       -       smtp
  -o syslog_name=postfix/relay
  -o smtp_tls_wrappermode=yes
  -o smtp_tls_security_level=encrypt
"""


def _service(listen: str, port: int) -> str:
    return f"{listen}:{port}" if listen else str(port)


def master_cf(ports: dict[str, int], listen: str) -> str:
    smtp = _service(listen, ports["smtp"])
    submission = _service(listen, ports["submission"])
    return (
        "# Written by Berth (mail_server/postfix_config.py); every change is overwritten.\n"
        f"{smtp:<10} inet  n       -       n       -       -       smtpd\n"
        f"{submission:<10} inet  n       -       n       -       -       smtpd\n"
        "  -o syslog_name=postfix/submission\n"
        "  -o smtpd_tls_security_level=encrypt\n"
        "  -o smtpd_tls_auth_only=yes\n"
        "  -o smtpd_sasl_auth_enable=yes\n"
        "  -o smtpd_client_restrictions=$berth_blocked_clients,permit_sasl_authenticated,reject\n"
        "  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject\n"
        # mailFromValidation: addresses the owner table knows may only be used by their owners.
        "  -o smtpd_sender_restrictions=reject_known_sender_login_mismatch\n"
        "  -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject\n"
        "  -o milter_macro_daemon_name=ORIGINATING\n"
        + STANDARD_SERVICES)


def main_cf(layout: Layout, conf_dir: str, snapshot: dict, tables: Tables, tls: tuple[str, str],
            listen: str, ipv6: bool) -> str:
    """main.cf; `conf_dir` is where the configuration will be read from once current."""
    def table(name: str, kind: str = "texthash") -> str:
        return f"{kind}:{os.path.join(conf_dir, 'postfix', name)}"

    hostname = snapshot.get("hostname") or "localhost"
    size = int(snapshot.get("maxEmailSize") or 25 * 1024 * 1024)
    lines = {
        "compatibility_level": "3.6",
        "queue_directory": layout.queue,
        "data_directory": POSTFIX_DATA,     # relative: see layout.py
        "daemon_directory": "/usr/lib/postfix/sbin",
        "command_directory": "/usr/sbin",
        "meta_directory": "/etc/postfix",
        "shlib_directory": "/usr/lib/postfix",
        "mail_owner": "postfix",
        "setgid_group": "postdrop",
        "maillog_file": layout.log_files()["postfix"],
        "maillog_file_prefixes": layout.logs,
        "syslog_name": "postfix",
        "myhostname": hostname,
        "myorigin": "$myhostname",
        "mydestination": "",
        "local_recipient_maps": "",
        "local_transport": "error:local delivery is disabled",
        "alias_maps": "",
        "alias_database": "",
        "biff": "no",
        "append_dot_mydomain": "no",
        "inet_interfaces": "all",
        "inet_protocols": "all" if ipv6 and listen in ("", "::", "[::]") else "ipv4",
        # Only this machine relays without logging in (Berth's own mail); nothing else of 127/8.
        "mynetworks": "127.0.0.1/32" + (" [::1]/128" if ipv6 else ""),
        "smtpd_banner": "$myhostname ESMTP",
        "message_size_limit": str(size),
        "mailbox_size_limit": "0",
        "virtual_mailbox_domains": table("domains"),
        "virtual_mailbox_maps": table("mailboxes"),
        "virtual_alias_maps": table("aliases"),
        "virtual_transport": "lmtp:unix:private/dovecot-lmtp",
        "smtpd_reject_unlisted_recipient": "yes",
        "smtpd_helo_required": "yes",
        "disable_vrfy_command": "yes",
        "smtpd_restriction_classes": ", ".join(tables.lists),
        # /network/blocklist, on port 25 and (master.cf) on submission
        "berth_blocked_clients": f"check_client_access {table('client_blocklist', 'cidr')}",
        "smtpd_client_restrictions": "$berth_blocked_clients",
        "smtpd_sender_restrictions": f"check_sender_access {table('blocklist', 'regexp')}",
        "smtpd_relay_restrictions": "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
        "smtpd_recipient_restrictions": ", ".join([
            f"check_recipient_access {table('inactive')}",
            f"check_recipient_access {table('lists')}", "permit"]),
        "smtpd_sender_login_maps": table("sender_owners"),
        "smtpd_sasl_type": "dovecot",
        "smtpd_sasl_path": "private/auth",
        "smtpd_sasl_auth_enable": "no",
        "smtpd_tls_cert_file": tls[0],
        "smtpd_tls_key_file": tls[1],
        "smtpd_tls_security_level": "may",
        "smtpd_tls_session_cache_database": "",
        "address_verify_map": "",
        "smtp_tls_security_level": "may",
        "smtp_tls_session_cache_database": "",
        "smtp_sasl_auth_enable": "yes" if tables.relays else "no",
        "smtp_sasl_password_maps": table("relay_passwords"),
        "smtp_sasl_security_options": "noanonymous",
        "smtp_sasl_tls_security_options": "noanonymous",
        "smtp_sender_dependent_authentication": "yes",
        "sender_dependent_default_transport_maps": table("sender_transports"),
        # rspamd: spam scoring of incoming mail, DKIM signing of outgoing mail (locally submitted
        # mail too). If it is down mail still flows, unsigned and unscored, rather than bounce.
        "smtpd_milters": "unix:private/rspamd-milter",
        "non_smtpd_milters": "$smtpd_milters",
        "milter_default_action": "accept",
        "milter_protocol": "6",
        "milter_mail_macros": "i {mail_addr} {client_addr} {client_name} {auth_authen}",
    }
    text = "# Written by Berth (mail_server/postfix_config.py); every change is overwritten.\n"
    text += "".join(f"{k} = {v}\n" for k, v in lines.items())
    for name in tables.lists:
        text += f"{name} = check_sender_access {table(name + '.senders')}, reject\n"
    return text
