"""Accounts: users, groups, their roles, and the credentials they hold.

    users.py           create/change/remove users; password resets; ownership transfer
    groups.py          groups and their members
    membership.py      the GroupMember links, read and replaced from either side
    roles.py           who may do what to whom (pure rules)
    passwords.py       argon2 hashing and the password policy
    emails.py          the email address check of every route that accepts one
    login_throttle.py  failed-login counting per account and per address
    sessions.py        activation, login, logout
    tokens.py          API tokens: issue, per-request lookup, revocation
    app_passwords.py   per-app secrets
    activation_lock.py the `activated` setting row that activation and restore share
    avatars.py         profile pictures

The names below are re-exported for callers outside this package that use `accounts.X`.
"""
from accounts.users import get_user, is_activated, with_group_ids

__all__ = ["get_user", "is_activated", "with_group_ids"]
