"""Mail: the data behind Berth's mail server and the mail Berth sends itself.

    settings.py         each domain's mail settings (enabled, MAIL FROM validation, catch-all, relay, banner)
    addresses.py        mailboxes and their aliases (one table with lists: a name is unique per domain)
    lists.py            mailing lists
    server_settings.py  the mailserver routes: location, max size, spam lists and rules, solr, usage, eventlog
    sync.py             the snapshot of all this handed to mail_server.apply after every change
    restore.py          applying it once after a restart or reboot (first health check, in the background)
    outgoing.py         sending Berth's own mail (the local server on loopback, or the domain's relay)
    account_mail.py     invites, password resets and admin notifications as mail
    checkpassword.py    the login check Dovecot runs (`python -m mail.checkpassword`)
    status.py           expected and found MX/SPF/DKIM/DMARC/PTR records (real DNS queries)
    app_mail.py         an app's mail identity: the sendmail and recvmail addons, configure/mailbox

Events (eventlog.record; Cloudron's names where it has them): mail.enabled / mail.disabled,
mail.update (any other setting of a domain or of the server; never a password), mail.box.add /
mail.box.update (also aliases) / mail.box.remove, mail.list.add / .update / .remove, mail.location,
mail.test_mail; user.invite (with mailSentTo) and user.password_reset_request (mailSent).

Layering: mail sits above accounts and domains (it reads users, groups and domains) and below
addons/apps/backups (which may send mail through it); mail_server (the Postfix/Dovecot processes)
is below, reached only through its small interface.
"""


APP_MAIL = ("app_mailbox_credentials", "remove_app_mailbox")


def __getattr__(name: str):
    """mail.app_mailbox_credentials / mail.remove_app_mailbox (the addons' interface), loaded on
    first use: the login program imports this package at every login and needs none of it."""
    if name in APP_MAIL:
        from mail import app_mail
        return getattr(app_mail, name)
    raise AttributeError(f"module 'mail' has no attribute {name!r}")
