"""Schema version 0013: resource usage history for the graphs.

Frozen here as it was written (see models/migrations/__init__.py).
"""


def migrate(db):
    """(Reserved; filled by the work that needs it.)"""
