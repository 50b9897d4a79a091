"""tls: the app's own certificate and key inside its container, at /etc/certs/tls_cert.pem and
/etc/certs/tls_key.pem, read-only (Cloudron's paths), for apps that terminate TLS themselves
(mail, TURN, LDAP servers...).

Copies are written to <data>/apps/<id>/tls/ and that folder is bound at /etc/certs: a folder, not
the two files, because a bind-mounted file keeps the inode it had, so a renewed certificate
written atomically (rename) would never show. The copies are refreshed every time the container
is created (install, configure, restart of a lost container, restore). The key is 0644 so an app
running as a non-root user can read it; host users cannot, since <data>/apps/<id> is 0700.
"""
import os
import shutil
from collections.abc import Callable
from typing import Any

import containers
import domains
from core import data_paths, files
from models.apps import App

TARGET = "/etc/certs"


def _fqdn(app: App) -> str:
    return domains.fqdn(app.location, app.domain)


def _write_copies(app):
    cert_path, key_path = domains.certificate_files(_fqdn(app))
    folder = data_paths.app_tls(app.id)
    containers.private_data_dir(data_paths.app_data(app.id))   # <data>/apps/<id> exists and is 0700
    os.makedirs(folder, mode=0o755, exist_ok=True)
    os.chmod(folder, 0o755)
    for source, name in ((cert_path, "tls_cert.pem"), (key_path, "tls_key.pem")):
        with open(source, "rb") as f:
            files.write_atomic(os.path.join(folder, name), f.read(), mode=0o644)


def setup(app: App, options: dict, log: Callable[[str], Any]) -> None:
    """Write the copies of the certificate and key nginx serves for the app's name."""
    _write_copies(app)


def mounts(app: App, options: dict) -> list[tuple[str, str, bool]]:
    """(source, target, read_only). Asked right before the container is created, which is when
    the copies are refreshed (also for a lost container re-created by start, without setup)."""
    _write_copies(app)
    return [(data_paths.app_tls(app.id), TARGET, True)]


def teardown(app: App, options: dict, log: Callable[[str], Any]) -> None:
    shutil.rmtree(data_paths.app_tls(app.id), ignore_errors=True)
