"""The mail server processes (Postfix, Dovecot, …): configuration rendered under the data dir, checked, reloaded."""
