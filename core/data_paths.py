"""Every place under the data dir (BERTH_DATA_DIR), in one table: no other module joins paths
onto the data dir itself.

    berth.db               the SQLite database (unless BERTH_DATABASE_URL says otherwise)
    apps/<id>/data         an app's persistent data (/app/data in its container)
    apps/<id>/icon         an app's custom icon
    apps/<id>/tls/         copies of the app's certificate and key (tls addon, /etc/certs)
    avatars/<user id>      user avatars
    branding/cloudron_avatar  the Cloudron icon (branding)
    certs/                 certificate and key files nginx reads
    acme/accounts/         one ACME account key per CA directory (0600)
    acme/certs/            certificates ordered from an ACME CA, and app certificates users uploaded
    acme/challenges/       pending HTTP-01 answers (token -> key authorization) nginx serves
    nginx/                 Berth's nginx: configuration, pid, logs
    mail/                  Berth's mail server: configuration, queue, Maildirs (vmail/), DKIM keys, logs
    logs/tasks/            one log file per task
    logs/box.log           Berth's own log (every server process appends; system_monitor.box_log)
    logs/crash.log         unhandled errors with their tracebacks (the `crash` log unit)
    backup-work/           scratch space of backup and restore tasks
    backups/               the default filesystem backup storage
    services/<name>/       data of an addon service container (postgresql, mysql, redis-<app id>), 0700
    addon-images/          the build of the local addon service image (lock, scratch root filesystem)
    volumes/<id>/          where a network volume (cifs, nfs, sshfs) is mounted
    volume-keys/<id>/      its credentials file or SSH key while mounting (0600 in 0700 folders)
    run/metrics/           Prometheus samples of each server process (multiprocess mode), emptied at start
    run/rate-limit         the per-token rate budget, shared by the server's workers
    keys/at-rest.key       the key sealing secrets kept in the database (TOTP secrets), 0600; not backed up
"""
import os

from core import config


def root() -> str:
    return config.get().data_dir


def under(*parts: str) -> str:
    return os.path.join(root(), *parts)


def apps_root() -> str:
    return under("apps")


def app_dir(app_id: str) -> str:
    return under("apps", app_id)


def app_data(app_id: str) -> str:
    return under("apps", app_id, "data")


def app_icon(app_id: str) -> str:
    return under("apps", app_id, "icon")


def app_tls(app_id: str) -> str:
    return under("apps", app_id, "tls")


def avatars() -> str:
    return under("avatars")


def avatar(user_id: str) -> str:
    return under("avatars", user_id)


def cloudron_avatar() -> str:
    return under("branding", "cloudron_avatar")


def certs(data_dir: str | None = None) -> str:
    return os.path.join(data_dir or root(), "certs")


def acme_accounts() -> str:
    return under("acme", "accounts")


def acme_certs() -> str:
    return under("acme", "certs")


def acme_challenges(data_dir: str | None = None) -> str:
    return os.path.join(data_dir or root(), "acme", "challenges")


def nginx(data_dir: str | None = None) -> str:
    return os.path.join(data_dir or root(), "nginx")


def task_logs() -> str:
    return under("logs", "tasks")


def backup_work() -> str:
    return under("backup-work")


def default_backups() -> str:
    return under("backups")


def addon_services() -> str:
    return under("services")


def addon_service_data(name: str) -> str:
    return under("services", name)


def addon_image_builds() -> str:
    return under("addon-images")


def mail(data_dir: str | None = None) -> str:
    return os.path.join(data_dir or root(), "mail")


def metrics_files(data_dir: str | None = None) -> str:
    """Where each server process writes its Prometheus samples (multiprocess mode); emptied at start."""
    return os.path.join(data_dir or root(), "run", "metrics")


def rate_limit_file(data_dir: str | None = None) -> str:
    """The per-token rate budget every server worker shares (web/rate_limit.py)."""
    return os.path.join(data_dir or root(), "run", "rate-limit")


def volume_mount(volume_id: str) -> str:
    """Where Berth mounts a network volume (its hostPath)."""
    return under("volumes", volume_id)


def volume_keys(volume_id: str) -> str:
    """The private folder holding a network volume's credentials file or SSH key."""
    return under("volume-keys", volume_id)


def at_rest_key() -> str:
    """The key that seals secrets Berth keeps in the database but must read back (accounts/totp.py)."""
    return under("keys", "at-rest.key")


def logs() -> str:
    """Berth's own log folder (box.log, crash.log, tasks/)."""
    return under("logs")


def box_log() -> str:
    return under("logs", "box.log")


def crash_log() -> str:
    return under("logs", "crash.log")


def platform_updates() -> str:
    """Releases of Berth downloaded by the update task, and the record of the staged one."""
    return under("platform-updates")


def deploy_uploads() -> str:
    """Source tarballs uploaded for a deploy, until the build task has unpacked them."""
    return under("deploy-uploads")


def deploy_work() -> str:
    """Scratch folders of build tasks (unpacked tarballs, git checkouts); emptied by each task."""
    return under("deploy-work")
