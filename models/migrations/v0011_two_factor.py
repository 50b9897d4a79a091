"""Schema version 0011: the TOTP secret of a user.

Frozen here as it was written (see models/migrations/__init__.py).
"""


def migrate(db):
    """(Reserved; filled by the work that needs it.)"""
