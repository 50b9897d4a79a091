"""Volumes: host folders and network shares an admin attaches to apps (the /volumes routes).

    paths.py       which host folders may be a volume (never a system folder, a parent of one or
                   anything inside one), mount points from /proc/self/mountinfo
    network.py     cifs/nfs/sshfs options (secrets masked), mounting with the host's tools
    records.py     add, list, change, remove, status
    app_mounts.py  which apps mount which volume at /media/<name> (configure/mounts), the binds
                   of an app's container
    files.py       the volume's file manager, through file_access like the app files routes

A volume sits between apps (which bind it into containers) and the lower layers; it knows no app
beyond the app table's rows (the in-use check names them).
"""
from volumes.app_mounts import app_mounts, binds_of, check_mounts, remount_shares, set_app_mounts
from volumes.records import (
    add,
    get_volume,
    list_volumes,
    remove,
    status,
    to_api,
    update,
    users_of,
)

__all__ = [
    "add", "app_mounts", "binds_of", "check_mounts", "get_volume", "list_volumes", "remount_shares", "remove",
    "set_app_mounts",
    "status", "to_api", "update", "users_of",
]
