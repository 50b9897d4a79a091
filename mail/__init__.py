"""Mail: mail domains, mailboxes, aliases and lists, and what the mail server is told of them."""
