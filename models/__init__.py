"""Peewee models of Berth, bound to one database proxy (see models.db)."""
from .credentials import AppPassword, LoginFailure, Token
from .db import BaseModel, database, iso, open_database, utcnow
from .eventlog import Event
from .identity import ROLE_RANK, ROLES, Group, GroupMember, User
from .settings import Setting

__all__ = [
    "AppPassword", "BaseModel", "Event", "Group", "GroupMember", "LoginFailure", "ROLES",
    "ROLE_RANK", "Setting", "Token", "User", "database", "iso", "open_database", "utcnow",
]
