"""Notifications for certificates about to end that nothing will renew: an uploaded (user)
certificate, or an ordered one whose renewal keeps failing (in back-off). Checked by the hourly
renewal schedule; each certificate is announced at most once a day (the day and the
certificate's fingerprint are remembered in <data dir>/acme/certs/expiry_notices.json).
"""
import contextlib
import datetime
import hashlib
import json
import os
from collections.abc import Iterable

from cryptography import x509

import reverse_proxy
from core import data_paths, files
from domains import acme_orders
from eventlog import notifications

WARN_DAYS = 14


def _path() -> str:
    return os.path.join(data_paths.acme_certs(), "expiry_notices.json")


def _load() -> dict:
    with contextlib.suppress(ValueError, TypeError):
        found = json.loads(files.read_text(_path()) or "{}")
        if isinstance(found, dict):
            return found
    return {}


def _ending(cert_pem: str | None, limit: datetime.datetime) -> datetime.datetime | None:
    """When the certificate ends, if that is before `limit`."""
    if not cert_pem:
        return None
    try:
        ends = x509.load_pem_x509_certificates(cert_pem.encode())[0].not_valid_after_utc
    except ValueError:
        return None
    return ends if ends <= limit else None


def check(names: Iterable[str] | None = None, now: datetime.datetime | None = None) -> list[str]:
    """Raise the notifications due for the certificates of `names` (default: every name a vhost
    serves). Returns the names notified."""
    if names is None:
        names = [n for spec in reverse_proxy.vhosts().values()
                 for n in [spec["fqdn"], *spec["aliases"], *spec["redirects"]]]
    now = now or datetime.datetime.now(datetime.timezone.utc)
    limit, today = now + datetime.timedelta(days=WARN_DAYS), now.strftime("%Y-%m-%d")
    sent, notified = _load(), []
    for name in dict.fromkeys(names):
        user = acme_orders.user_certificate(name)
        if user and _ending(user, now) is None:     # uploaded and still valid: what nginx serves
            cert, why = user, "It was uploaded for this app and is not renewed automatically"
        elif acme_orders.uses_acme(name) and acme_orders.in_backoff(acme_orders.order_name(name)):
            cert, why = acme_orders.acme_certificate(acme_orders.order_name(name)), "Renewing it keeps failing"
        else:
            continue
        ends = _ending(cert, limit)
        if ends is None:
            continue
        key = hashlib.sha256(cert.encode()).hexdigest()[:32]
        if sent.get(key) == today:
            continue
        notifications.add(f"Certificate for {name} expires soon",
                          f"The certificate served for {name} expires on {ends:%Y-%m-%d %H:%M} UTC. {why}.")
        sent[key] = today
        notified.append(name)
    if notified:
        os.makedirs(data_paths.acme_certs(), mode=0o700, exist_ok=True)
        # Only today's entries are kept: older ones would never match again.
        files.write_atomic(_path(), json.dumps({k: v for k, v in sent.items() if v == today}), 0o600)
    return notified
