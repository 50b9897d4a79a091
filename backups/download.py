"""GET /backups/{id}/download: a tgz or zstd backup as it is stored (owner-only in openapi.yaml: a box
backup is the platform database, see backups/snapshot_secrets.py)."""
import itertools
from collections.abc import Iterator

from backups import formats, records, settings
from core.errors import BadRequest


def download(backup_id: str) -> tuple[str, Iterator[bytes]]:
    """(file name, byte iterator) of a tgz or zstd backup as stored (encrypted ones stay encrypted)."""
    backup = records.get_backup(backup_id)
    if backup.state != "normal":
        raise BadRequest(f"backup {backup_id} is {backup.state}, not complete", "backupId")
    if backup.format not in formats.ARCHIVES:
        raise BadRequest(f"backup {backup_id} is an rsync backup (a folder of files), not one archive",
                         "backupId")
    stream = iter(formats.download_stream(backup.format, settings.open_storage(), backup.remote_path))
    # The first read happens now, so a storage failure is a 424 answer, not a broken download.
    first = next(stream, b"")
    suffix = formats.ARCHIVES[backup.format]("", bool(backup.encrypted))
    name = backup.id.replace("/", "_") + suffix
    return name, itertools.chain([first], stream)
