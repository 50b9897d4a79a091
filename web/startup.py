"""What every Berth process does before it touches the data dir: keep it private.

The data dir holds secrets in clear (the database has the backup encryption key, storage
credentials, TLS private keys, app environments, password and token hashes), so nothing Berth
writes may be readable by other local users: the process umask is 0o077 (new files 0600, new
folders 0700; task processes and tools inherit it), the data dir itself is 0700, and the files
of an existing install created under a laxer umask (the SQLite files, private keys) are made
owner-only again at start-up.
"""
import glob
import os
import resource
from urllib.parse import urlparse

from core import data_paths
from core.config import Config, ConfigError

UMASK = 0o077


def make_data_dir_private(cfg: Config) -> None:
    """Set the umask, create the data dir 0700 (or tighten it) and the existing secret files 0600."""
    os.umask(UMASK)
    try:
        os.makedirs(cfg.data_dir, mode=0o700, exist_ok=True)
        os.chmod(cfg.data_dir, 0o700)
    except OSError as e:
        raise ConfigError(f"BERTH_DATA_DIR={cfg.data_dir!r} cannot be made private (0700): {e.strerror}") from None
    for path in _sqlite_files(cfg.database_url) + glob.glob(os.path.join(data_paths.certs(cfg.data_dir), "*.key")):
        try:
            os.chmod(path, 0o600)
        except FileNotFoundError:
            pass
    certs = data_paths.certs(cfg.data_dir)
    if os.path.isdir(certs):
        os.chmod(certs, 0o700)


def _sqlite_files(url: str) -> list[str]:
    """The database file and its WAL and shared-memory files (SQLite creates those two with the
    database file's mode, so a private database keeps them private)."""
    if urlparse(url).scheme != "sqlite":
        return []
    path = url[len("sqlite:///"):]
    if not path or path == ":memory:":
        return []
    return [path, path + "-wal", path + "-shm"]


def raise_open_file_limit() -> tuple[int, int]:
    """Raise this process's open-file limit (RLIMIT_NOFILE) from its soft value to the hard one,
    inherited by the gunicorn workers: every log stream client holds a socket, and the soft
    default (often 1,024) refuses connections long before 5,000 clients. The (soft, hard) now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass  # a container or policy may forbid it: serve with what there is
    return soft, hard
