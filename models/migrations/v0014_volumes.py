"""Schema version 0014: volumes and app mounts.

Frozen here as it was written (see models/migrations/__init__.py).
"""


def migrate(db):
    """(Reserved; filled by the work that needs it.)"""
