"""Peewee models of Berth, bound to one database proxy (see models.db)."""
from .credentials import AppPassword, LoginFailure, Token
from .db import BaseModel, database, iso, open_database, utcnow
from .domains import Domain
from .eventlog import Event
from .identity import ROLE_RANK, ROLES, Group, GroupMember, User
from .settings import Setting
from .tasks import Task

__all__ = [
    "AppPassword", "BaseModel", "Domain", "Event", "Group", "GroupMember", "LoginFailure", "ROLES",
    "ROLE_RANK", "Setting", "Task", "Token", "User", "database", "iso", "open_database", "utcnow",
]
