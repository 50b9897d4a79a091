"""Which certificate nginx serves for a name, and ordering certificates from an ACME CA.

For a hostname, in this order (certificate_files):
  1. a certificate a user uploaded for that app name (POST /apps/{id}/configure/cert);
  2. on a domain whose tlsConfig provider is letsencrypt-*: the certificate ordered for the name,
     while it is still valid;
  3. the domain's fallback certificate (domains.fallback_certificates): also while an order is
     pending or after it failed.

Ordered and uploaded certificates are kept as the files nginx reads (reverse_proxy.certificate_files,
names `acme_<host>` and `user_<host>`, keys 0600); the state of failed orders (for back-off) sits
beside them under <data dir>/acme/certs/. Orders run in `renewcerts` tasks (domains.task_bodies):
an app install queues one for its names; the hourly schedule renews what expires within 30 days.
"""
import contextlib
import datetime
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable

from cryptography import x509
from cryptography.hazmat.primitives import serialization

import certificates
import dns_providers
import eventlog
import reverse_proxy
import tasks
from certificates import acme_client
from core import config, data_paths, files
from core.errors import BadRequest, Conflict
from domains import fallback_certificates, hostnames
from models import Task
from reverse_proxy import acme_challenges
from reverse_proxy import certificate_files as cert_files
from tasks import schedules

RENEW_BEFORE_DAYS = 30
LOCK = "certs"                          # one renewcerts task at a time
SCHEDULE = ("acme-renewal", "0 17 * * * *", "certs.renewal_check")   # hourly, at minute 17
MAX_BACKOFF_SECS = 24 * 3600


def register() -> None:
    schedules.ensure(*SCHEDULE)


# ---- which certificate a name gets --------------------------------------------------------------

def _files(prefix: str, hostname: str) -> tuple[str, str]:
    return cert_files.paths(f"{prefix}_{hostnames.normalise(hostname)}")


def _stored(prefix: str, hostname: str) -> str | None:
    """The certificate PEM stored for the name (None when there is none, or both files are not there)."""
    cert_path, key_path = _files(prefix, hostname)
    if not os.path.exists(key_path):
        return None
    return files.read_text(cert_path)


def _valid(cert_pem: str | None, days: int = 0) -> bool:
    try:
        return bool(cert_pem) and not certificates.expires_within(cert_pem, days)
    except ValueError:
        return False


def uses_acme(hostname: str) -> bool:
    dom = hostnames.domain_for_host(hostname)
    return dom is not None and (dom.tls_config or {}).get("provider", "").startswith("letsencrypt")


def order_name(hostname: str) -> str:
    """What is ordered for a name: `*.<domain>` (with the domain itself, through DNS-01) on a
    domain whose tlsConfig asks for a wildcard, else the name itself (HTTP-01)."""
    dom = hostnames.domain_for_host(hostname)
    if dom is not None and (dom.tls_config or {}).get("wildcard"):
        return "*." + dom.domain
    return hostnames.normalise(hostname)


def certificate_files(hostname: str) -> tuple[str, str]:
    """(cert path, key path) nginx serves for `hostname` (see the module's docstring)."""
    if _valid(_stored("user", hostname)):
        return _files("user", hostname)
    if uses_acme(hostname) and _valid(_stored("acme", order_name(hostname))):
        return _files("acme", order_name(hostname))
    return fallback_certificates.certificate_files(hostname)


def refresh_proxy() -> None:
    """Serve the certificates as they now are (every vhost re-rendered, `nginx -t`, reload)."""
    reverse_proxy.refresh_certificates(certificate_files)


# ---- failures and back-off ----------------------------------------------------------------------

def _state_path(hostname: str) -> str:
    name = hostnames.normalise(hostname).replace("*", "_wildcard_")
    return os.path.join(data_paths.acme_certs(), name + ".json")


def _state(hostname: str) -> dict:
    with contextlib.suppress(ValueError, TypeError):
        return json.loads(files.read_text(_state_path(hostname)) or "{}")
    return {}


def _backoff_secs(failures: int) -> int:
    """1 h after the first failure, doubling, at most a day (Let's Encrypt limits failed validations)."""
    return min(3600 * 2 ** max(failures - 1, 0), MAX_BACKOFF_SECS)


def in_backoff(hostname: str, now: float | None = None) -> bool:
    st = _state(hostname)
    if not st.get("failures"):
        return False
    return (now or time.time()) < st.get("last_failure", 0) + _backoff_secs(st["failures"])


def record_failure(hostname: str, message: str) -> None:
    st = _state(hostname)
    os.makedirs(data_paths.acme_certs(), mode=0o700, exist_ok=True)
    files.write_atomic(_state_path(hostname), json.dumps(
        {"failures": st.get("failures", 0) + 1, "last_failure": time.time(), "message": message}), 0o600)


def clear_failure(hostname: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_state_path(hostname))


# ---- ordering -----------------------------------------------------------------------------------

def directory_url(provider: str) -> str:
    return config.get().acme_directory or acme_client.LETSENCRYPT_DIRECTORIES[provider]


def account_key(directory: str) -> str:
    """The account key for a CA directory: made once, kept 0600 under <data dir>/acme/accounts/."""
    folder = data_paths.acme_accounts()
    path = os.path.join(folder, hashlib.sha256(directory.encode()).hexdigest()[:32] + ".key")
    found = files.read_text(path)
    if found:
        return found
    os.makedirs(folder, mode=0o700, exist_ok=True)
    key = acme_client.new_account_key()
    files.write_atomic(path, key, 0o600)
    return key


def _publish(token: str, key_authorization: str):
    reverse_proxy.publish_challenge(token, key_authorization)
    # Withdrawn from the answers' folder at once and from nginx at its next reload (the next
    # challenge published, or refresh_proxy at the end of the task): an answer the CA has checked
    # reveals nothing, and a reload of its own was a third of Berth's time per certificate.
    return lambda: acme_challenges.remove(config.get().data_dir, token)


def _dns_publisher(dom):
    """DNS-01 answers through the domain's own DNS provider (dns_providers)."""
    provider = dns_providers.create(dom.provider, dom.zone_name, dom.config)

    def relative(name):
        name = name.rstrip(".")
        return "" if name == dom.zone_name else name[:-len(dom.zone_name) - 1]

    def publish(records: dict[str, list[str]]):
        try:
            for name, values in records.items():
                provider.upsert_records(relative(name), "TXT", values, ttl=60)
        except dns_providers.DnsError as e:
            raise acme_client.AcmeError(f"the DNS provider refused the challenge record: {e}") from e

        def withdraw():
            for name in records:
                provider.delete_records(relative(name), "TXT")
        return withdraw
    return publish


def order(hostname: str, log: Callable[[str], object] = print) -> None:
    """Order a certificate for `hostname` (an order_name: `*.<domain>` goes through DNS-01 with the
    domain itself) from its domain's CA and store it (not yet served: refresh_proxy does that).
    Raises AcmeError with the CA's message."""
    dom = hostnames.domain_for_host(hostname)
    directory = directory_url((dom.tls_config or {}).get("provider", "letsencrypt-prod"))
    account = acme_client.AcmeAccount(directory, account_key(directory), config.get().acme_ca_bundle)
    if hostname.startswith("*."):
        log(f"{hostname}: ordering a certificate from {directory} (dns-01 through {dom.provider})")
        chain, key = account.order([hostname, hostname[2:]], publish_dns=_dns_publisher(dom))
    else:
        log(f"{hostname}: ordering a certificate from {directory} (http-01)")
        chain, key = account.order([hostname], _publish)
    cert_files.write_files(f"acme_{hostnames.normalise(hostname)}", chain, key)
    log(f"{hostname}: certificate issued, valid until {_not_after(chain):%Y-%m-%d %H:%M} UTC")


def expiry(name: str) -> datetime.datetime | None:
    """When the certificate ordered for `name` (an order_name) ends, if there is one."""
    found = _stored("acme", name)
    return _not_after(found) if found else None


def _not_after(cert_pem: str) -> datetime.datetime:
    return x509.load_pem_x509_certificates(cert_pem.encode())[0].not_valid_after_utc


def served_names(domain: str | None = None) -> list[str]:
    """Every name a vhost serves on a letsencrypt-* domain (optionally only of `domain`)."""
    out = []
    for spec in reverse_proxy.vhosts().values():
        for name in [spec["fqdn"], *spec["aliases"], *spec["redirects"]]:
            dom = hostnames.domain_for_host(name)
            if dom is None or not (dom.tls_config or {}).get("provider", "").startswith("letsencrypt"):
                continue
            if domain is None or dom.domain == hostnames.normalise(domain):
                out.append(name)
    return list(dict.fromkeys(out))


def due(names: Iterable[str], days: int = RENEW_BEFORE_DAYS, respect_backoff: bool = False) -> list[str]:
    """What needs an order (order_name()s): for names without a user certificate, no ordered one
    valid beyond `days`."""
    now = time.time()
    wanted = dict.fromkeys(order_name(n) for n in names if not _valid(_stored("user", n)))
    return [n for n in wanted
            if not _valid(_stored("acme", n), days) and not (respect_backoff and in_backoff(n, now))]


def queue(names: Iterable[str] | None = None, domain: str | None = None, scheduled: bool = False) -> int:
    """Queue a renewcerts task (for `names`, else every served name due); returns its id."""
    args = {"hostnames": list(names) if names is not None else None, "domain": domain, "scheduled": scheduled}
    return tasks.start("renewcerts", "certs.renew", args, locks=(LOCK,))


def request_for(names: Iterable[str]) -> int | None:
    """After an app's vhost is written: queue an order for its names that need one (None: nothing to do)."""
    wanted = due([n for n in names if uses_acme(n)])
    return queue(wanted) if wanted else None


def renewal_running() -> bool:
    """Is a renewcerts task queued or running? (They hold LOCK: a second one would only wait.)"""
    return Task.select().where(Task.type == "renewcerts",
                               (Task.active == True) | (Task.pending == True)).exists()  # noqa: E712


def renew_now(actor: eventlog.Actor, domain: str | None = None) -> int:
    """POST /cloudron/renew_certs: order what is missing or expiring now, as a task (409 while
    another renewal is queued or running, as Cloudron answers)."""
    if renewal_running():
        raise Conflict("Certificate renewal is already in progress")
    task_id = queue(domain=hostnames.normalise(domain) if domain else None)
    eventlog.record("certificate.renew", actor, taskId=str(task_id), domain=domain)
    return task_id


# ---- user certificates --------------------------------------------------------------------------

def _check_user_pair(cert_pem, key_pem, hostname: str) -> tuple[str, str]:
    """The uploaded pair when the key belongs to it, it is valid now and it names `hostname`."""
    chain = certificates.load_chain(cert_pem, "cert")
    key = certificates.load_key(key_pem, "key")
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if chain[0].public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise BadRequest("does not belong to the certificate (the first certificate of the chain "
                         "must be the one of this key)", "key")
    if not any(certificates.matches(n, hostname) for n in certificates.names(chain[0])):
        listed = ", ".join(certificates.names(chain[0])) or "no names"
        raise BadRequest(f"is for {listed}, not for {hostname}", "cert")
    if not _valid(cert_pem):
        raise BadRequest("has expired", "cert")
    return cert_pem.strip() + "\n", key_pem.strip() + "\n"


def set_user_certificate(actor: eventlog.Actor, app_id: str, app_names: list[str], domain: str,
                         subdomain: str, cert_pem: str | None, key_pem: str | None) -> int:
    """Store (or with null cert and key, remove) the certificate of one of an app's names, then
    queue the task that serves it. BadRequest when the name is not the app's or the pair is wrong."""
    hostname = hostnames.fqdn(hostnames.check_label(subdomain, "subdomain"), domain)
    if hostname not in app_names:
        raise BadRequest(f"{hostname} is not one of this app's names", "domain")
    name = f"user_{hostname}"
    if cert_pem is None and key_pem is None:
        cert_files.remove_files(name)
    else:
        cert, key = _check_user_pair(cert_pem, key_pem, hostname)
        cert_files.write_files(name, cert, key)
    task_id = tasks.start("app", "certs.refresh", {}, app_id=app_id, locks=(LOCK,))
    eventlog.record("app.configure", actor, appId=app_id, taskId=str(task_id), changed=["cert"],
                    hostname=hostname)
    return task_id


def remove_user_certificates(app_names: Iterable[str]) -> None:
    """Delete the certificates uploaded for an app's names (its uninstall): they belong to the app,
    and a later app on the same name must not inherit them."""
    for hostname in app_names:
        cert_files.remove_files(f"user_{hostnames.normalise(hostname)}")


def user_certificate(hostname: str) -> str | None:
    """The certificate PEM uploaded for `hostname`, if any."""
    return _stored("user", hostname)


def acme_certificate(hostname: str) -> str | None:
    """The certificate PEM ordered for `hostname` (an order_name()), if any."""
    return _stored("acme", hostname)
