"""What the platform snapshot of a box backup leaves out, and how a restore makes up for it.

A box backup is a copy of the platform database. It sits in the backup storage and can be
downloaded as stored (GET /backups/{id}/download, owner-only for this reason), so secrets that
are answered to nobody through the API must not be readable in it (security review, finding 4):

- The storage secrets of the backup config (`key`, `secretAccessKey`) never go in. A restore does
  not need them: the restore request brings its own storage config and key
  (box_restore.carry_over keeps only settings.POLICY_FIELDS of the restored config).
- The private keys of the domains' fallback certificates go in only when the box backup is
  encrypted (then with everything else under the backup key). An unencrypted box backup has
  none; its restore gives each such domain a new self-signed certificate, and a notification
  names the domains whose uploaded certificate must be uploaded again.
- Users' password hashes stay, deliberately: after a restore they are the only way to log in
  (there is no other owner recovery), and no key exists to seal them with when the backup is
  not encrypted. They are Argon2id hashes, the download is owner-only, and an encrypted backup
  holds them encrypted.

The copy is scrubbed by backups.database_snapshots (`scrub`); keep this module, settings.SETTING
and database_snapshots.EXCLUDED in sync.
"""
import json
from collections.abc import Callable

import backup_storage
import certificates
from backups import database_snapshots, settings
from eventlog import notifications
from models.domains import Domain
from models.settings import Setting

SETTING_TABLE = Setting._meta.table_name
DOMAIN_TABLE = Domain._meta.table_name


def _scrub_setting(row: dict) -> dict:
    if row.get("name") != settings.SETTING or not row.get("value"):
        return row
    value = json.loads(row["value"])
    if isinstance(value, dict):
        for field in backup_storage.SECRET_FIELDS:
            value.pop(field, None)
        row["value"] = json.dumps(value, separators=(",", ":"))
    return row


def _scrub_domain(row: dict) -> dict:
    row["fallback_key"] = ""
    return row


def scrubbers(encrypted: bool) -> database_snapshots.Scrub:
    """{table: row -> row} for database_snapshots.snapshot(scrub=...)."""
    rules = {SETTING_TABLE: _scrub_setting}
    if not encrypted:
        rules[DOMAIN_TABLE] = _scrub_domain
    return rules


def make_up_for_missing(log: Callable[[str], None]) -> None:
    """After a restore (inside its transaction): every domain whose certificate key was left out
    gets a new self-signed certificate; uploaded ones are named in a notification."""
    replaced = []
    for dom in Domain.select().where(Domain.fallback_key == ""):
        cert, key = certificates.generate_self_signed(dom.domain)
        if not dom.fallback_generated:
            replaced.append(dom.domain)
        Domain.update(fallback_cert=cert, fallback_key=key, fallback_generated=True).where(
            Domain.domain == dom.domain).execute()
        log(f"domain {dom.domain}: the backup holds no certificate key (it is not encrypted); "
            "a new self-signed certificate was made")
    if replaced:
        notifications.add(
            "Upload the certificates of restored domains again",
            "The restored backup was not encrypted, so it holds no private keys. These domains now "
            "serve a self-signed certificate instead of the one that was uploaded: " + ", ".join(replaced))
