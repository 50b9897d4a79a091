"""Schema version 0012: users and groups from an external LDAP directory.

Frozen here as it was written (see models/migrations/__init__.py).
"""


def migrate(db):
    """(Reserved; filled by the work that needs it.)"""
