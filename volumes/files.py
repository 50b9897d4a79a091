"""A volume's files through the API: /volumes/{id}/files/{path}, the same file manager as the app
files routes (apps.files) with the same answers, rooted at the volume's hostPath.

Everything goes through file_access.tree, which walks from the root by descriptors and never
follows a symlink: whatever an app that mounts the volume read-write plants there (`x -> /etc`)
is listed as a link and never read or written through. A mountpoint or network volume that is
not mounted is refused (404): its empty mount folder is not the volume, and an upload there would
land on the server's own disk.
"""

from core.errors import NotFound
from file_access import manager
from volumes import network, paths, records


def _root(volume_id: str) -> str:
    volume = records.get_volume(volume_id)
    if volume.mount_type != "filesystem" and not paths.is_mount_point(volume.host_path):
        why = network.missing_tool(volume.mount_type) if volume.mount_type in network.NETWORK_TYPES else None
        raise NotFound(f"Volume {volume.name} is not mounted" + (f": {why}" if why else ""))
    return volume.host_path


# The file manager routes (list, download, upload, make a folder, rename, copy, chown, extract,
# delete) on this root, as for volumes (file_access.manager).
browser = manager.FileManager(_root)
