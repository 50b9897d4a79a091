"""The one error the mail server raises."""
from core.errors import DependencyFailed


class MailServerError(DependencyFailed):
    """Postfix, Dovecot or rspamd refused a configuration or did not start, or a relay refused us;
    the message carries the program's (or the relay's) own words."""
