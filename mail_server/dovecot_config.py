"""dovecot.conf for one Berth mail server: IMAP (STARTTLS) and IMAPS, LMTP delivery from Postfix,
and the SASL service Postfix's submission port asks.

Passwords: Dovecot holds none. Its passdb is the checkpassword program Berth names in the snapshot
(`authProgram`, run by the root auth worker with the environment Berth started Dovecot with), so a
login is checked against Berth's own user and app-password records every time and a deactivated
or deleted user (or a disabled mailbox) is refused at once.

Mail lives in Maildirs under vmail/<domain>/<local part>/, owned by the `mail` user (reached
through the mount: layout.py).
"""
import os
import shlex

from mail_server.layout import Layout

MAIL_USER = "mail"


def auth_wrapper(argv: list[str]) -> str:
    """A tiny script running `argv` plus the arguments Dovecot gives: Dovecot's checkpassword
    driver runs a single path, while Berth's program is an argument list."""
    return "#!/bin/sh\nexec " + " ".join(shlex.quote(a) for a in argv) + ' "$@"\n'


def _listen(listen: str, ipv6: bool) -> str:
    if listen:
        return listen
    return "*, ::" if ipv6 else "*"


def render(layout: Layout, conf_dir: str, snapshot: dict, ports: dict[str, int], tls: tuple[str, str],
           listen: str, ipv6: bool, environment: list[str]) -> str:
    """dovecot.conf. The auth program is named through `current` (Dovecot runs it at every login,
    long after this file was read); `environment` names the variables the auth program gets from
    Dovecot's own environment."""
    hostname = snapshot.get("hostname") or "localhost"
    dh = "ssl_dh = </usr/share/dovecot/dh.pem\n" if os.path.exists("/usr/share/dovecot/dh.pem") else ""
    logs = layout.log_files()["dovecot"]
    return f"""\
# Written by Berth (mail_server/dovecot_config.py); every change is overwritten.
base_dir = {layout.dovecot_base}
state_dir = {layout.dovecot_base}/state
instance_name = berth-{os.path.basename(layout.live)}
protocols = imap lmtp
listen = {_listen(listen, ipv6)}
log_path = {logs}
info_log_path = {logs}
import_environment = TZ {" ".join(environment)}
hostname = {hostname}

ssl = yes
ssl_cert = <{tls[0]}
ssl_key = <{tls[1]}
ssl_min_protocol = TLSv1.2
{dh}disable_plaintext_auth = yes
auth_mechanisms = plain login
auth_username_format = %Lu

mail_location = maildir:~/Maildir
mail_uid = {MAIL_USER}
mail_gid = {MAIL_USER}
first_valid_uid = 1
mail_privileged_group =

namespace inbox {{
  inbox = yes
  separator = /
  mailbox Drafts {{
    special_use = \\Drafts
    auto = subscribe
  }}
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
  mailbox Spam {{
    special_use = \\Junk
    auto = subscribe
  }}
}}

passdb {{
  driver = checkpassword
  args = {layout.current}/dovecot/auth-program
}}
userdb {{
  driver = static
  args = uid={MAIL_USER} gid={MAIL_USER} home={layout.vmail}/%Ld/%Ln allow_all_users=yes
}}

service imap-login {{
  inet_listener imap {{
    port = {ports["imap"]}
  }}
  inet_listener imaps {{
    port = {ports["imaps"]}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service lmtp {{
  unix_listener {layout.private}/dovecot-lmtp {{
    mode = 0600
    user = postfix
    group = postfix
  }}
}}
service auth {{
  # Dovecot runs checkpassword from the auth process itself; Berth's program reads Berth's
  # database inside the 0700 data dir, so this process runs as root.
  user = root
  unix_listener {layout.private}/auth {{
    mode = 0660
    user = postfix
    group = postfix
  }}
}}
service auth-worker {{
  user = root
}}
protocol lmtp {{
  postmaster_address = postmaster@{hostname}
}}
"""
