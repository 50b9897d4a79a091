"""The dashboard domain: the first-run setup (POST /cloudron/setup) stores it with its DNS and TLS
settings, and /cloudron/status and /config name the dashboard at `my.<domain>` from then on.

Cloudron answers setup at once and does the DNS records and certificate in the background. Berth
verifies the provider's credentials before answering (a refusal is a 400) and writes no record for
`my.<domain>` yet (only app records follow the apps: domains.dns_records), and nginx serves the
domain's fallback certificate, so the whole setup is done before the answer: `status.setup` never
shows it active. A second setup before activation (a corrected provider, say) changes the stored
domain instead of failing on it, as Cloudron's setup starts over; activation ends that (the handler
refuses setup once a user exists).

Moving the dashboard later is two steps, as in Cloudron: prepare_dashboard_domain (a task: the
name's record and certificate) and set_dashboard_domain (the setting, and a vhost through which the
managed nginx serves Berth's own API at that name).
"""
from collections.abc import Callable

import eventlog
import reverse_proxy
import tasks
from core import config
from core.errors import BadRequest, Conflict, NotFound
from domains import acme_orders, dns_records, hostnames, records
from models import Domain, Setting, Task

ADMIN_DOMAIN = "admin_domain"
DASHBOARD_LABEL = "my"
# The vhost that serves Berth's own API at `my.<domain>` sits among the apps' vhosts under this id
# (no app can have it: app ids are UUIDs), so renewal, certificate refreshes and the start-up
# reconciliation (apps.reconcile) treat it like any other.
VHOST_ID = "berth-dashboard"
DASHBOARD_SERVED = "dashboard_served"     # set_dashboard_domain ran: the vhost above exists


def admin_domain() -> str | None:
    """The dashboard domain set up by setup, or None before it."""
    return Setting.read(ADMIN_DOMAIN)


def admin_fqdn() -> str | None:
    """The dashboard's host name (`my.<domain>`, `my-<domain>` with hyphenated subdomains), or None."""
    domain = admin_domain()
    dom = records.find(domain) if domain else None
    return hostnames.fqdn(DASHBOARD_LABEL, dom) if dom is not None else None


def setup(actor: eventlog.Actor, dns_config: dict) -> str:
    """Add (or, on a repeated setup, change) the domain of `dns_config` {provider, domain, zoneName,
    config, tlsConfig} through the domain records, and make it the dashboard domain. Returns the
    dashboard's host name. Nothing is stored when the domain is refused (400)."""
    if not isinstance(dns_config, dict) or not isinstance(dns_config.get("domain"), str):
        raise BadRequest("is required", "dnsConfig.domain")
    body = {k: dns_config[k] for k in ("domain", "provider", "zoneName", "config", "tlsConfig",
                                       "fallbackCertificate") if k in dns_config}
    # Cloudron's setup defaults to Let's Encrypt; stored as asked (see records._clean_tls).
    body.setdefault("tlsConfig", {"provider": "letsencrypt-prod"})
    existing = records.find(body["domain"])
    if existing is None:
        dom = records.add_domain(actor, body)
    else:
        dom = records.update_domain(actor, existing.domain, body)
    Setting.put(ADMIN_DOMAIN, dom.domain)
    fqdn = hostnames.fqdn(DASHBOARD_LABEL, dom)
    eventlog.record("cloudron.provision", actor, domain=dom.domain, adminFqdn=fqdn)
    return fqdn


# ---- moving the dashboard (prepare_dashboard_domain / set_dashboard_domain) ----------------------

def _domain(domain: str) -> Domain:
    if not isinstance(domain, str) or not domain.strip():
        raise BadRequest("is required", "domain")
    dom = records.find(hostnames.normalise(domain))
    if dom is None:
        raise NotFound(f"No such domain: {domain}")
    return dom


def prepare(actor: eventlog.Actor, domain: str) -> int:
    """POST /cloudron/prepare_dashboard_domain: queue the task that writes the record of
    `my.<domain>` and gets its certificate (domains.task_bodies.prepare_dashboard). 409 while one
    is queued or running."""
    dom = _domain(domain)
    if Task.select().where(Task.type == "prepareDashboardDomain",
                           (Task.active == True) | (Task.pending == True)).exists():  # noqa: E712
        raise Conflict("Dashboard domain is already being prepared")
    task_id = tasks.start("prepareDashboardDomain", "dashboard.prepare", {"domain": dom.domain},
                          locks=("dashboard", acme_orders.LOCK))
    eventlog.record("dashboard.prepare", actor, domain=dom.domain, taskId=str(task_id))
    return task_id


def prepare_records_and_certificate(log: Callable[[str], object], domain: str) -> str:
    """The prepare task's work: the dashboard name's A record, and its certificate when the domain
    uses Let's Encrypt (a refusal raises AcmeError with the CA's words). Returns the name."""
    fqdn = hostnames.fqdn(DASHBOARD_LABEL, _domain(domain))
    dns_records.add(log, [fqdn])
    if acme_orders.uses_acme(fqdn) and acme_orders.due([fqdn]):
        name = acme_orders.order_name(fqdn)
        acme_orders.order(name, log=log)
        acme_orders.clear_failure(name)
    return fqdn


def vhost_spec() -> dict | None:
    """The spec of the dashboard's vhost (write_app_vhost's arguments), or None before a dashboard
    domain is set. nginx reaches the API on loopback, at the port it listens on."""
    fqdn = admin_fqdn() if Setting.read(DASHBOARD_SERVED) else None
    if not fqdn:
        return None
    return {"app_id": VHOST_ID, "fqdn": fqdn, "upstream_port": config.get().port}


def set_domain(actor: eventlog.Actor, domain: str) -> str:
    """POST /cloudron/set_dashboard_domain: make `domain` the dashboard domain and serve the API
    through the managed nginx at `my.<domain>` (certificate: ordered by prepare, else the
    fallback while an order is queued). 409 when an app already has that name. Returns the name."""
    dom = _domain(domain)
    fqdn = hostnames.fqdn(DASHBOARD_LABEL, dom)
    # The settings first: a start-up reconciliation syncing the vhosts meanwhile then keeps this
    # one (it reads them under the proxy's lock); they are put back when nginx refuses the vhost.
    before = Setting.read(ADMIN_DOMAIN), Setting.read(DASHBOARD_SERVED)
    Setting.put(ADMIN_DOMAIN, dom.domain)
    Setting.put(DASHBOARD_SERVED, True)
    try:
        reverse_proxy.write_app_vhost(VHOST_ID, fqdn, config.get().port,
                                      certificate=acme_orders.certificate_files)
    except BaseException:
        Setting.put(ADMIN_DOMAIN, before[0])
        Setting.put(DASHBOARD_SERVED, before[1])
        raise
    acme_orders.request_for([fqdn])
    eventlog.record("dashboard.set", actor, domain=dom.domain, adminFqdn=fqdn)
    return fqdn
