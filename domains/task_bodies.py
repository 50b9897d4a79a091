"""Certificate task bodies, reached through tasks.registry (`certs.renew`, `certs.refresh`) and the
schedule action `certs.renewal_check`. They run in a task process (tasks.child)."""
import datetime

from certificates import acme_client
from domains import acme_orders, dashboard, expiry_notices, hostnames
from eventlog import notifications
from tasks.context import TaskContext


def renew(task: TaskContext, hostnames: list[str] | None = None, domain: str | None = None,
          scheduled: bool = False, **_: object) -> dict:
    """Order a certificate for every name that needs one (given, or every served name due); the
    ones ordered are served at the end. Any refusal fails the task with the CA's message and
    raises a notification; the names stay on their fallback certificate and are retried on the
    schedule with back-off."""
    names = hostnames if hostnames is not None else acme_orders.served_names(domain)
    wanted = acme_orders.due(names, respect_backoff=scheduled)
    task.log(f"{len(names)} name(s) on Let's Encrypt domains, {len(wanted)} need a certificate")
    issued, failed = [], []
    for i, name in enumerate(wanted):
        task.progress(5 + 90 * i // max(len(wanted), 1), f"Ordering a certificate for {name}")
        try:
            acme_orders.order(name, log=task.log)
        except acme_client.AcmeError as e:
            message = str(e)
            task.log(f"{name}: order failed: {message}")
            acme_orders.record_failure(name, message)
            ends = acme_orders.expiry(name)
            served = (f"The current certificate stays until it expires on {ends:%Y-%m-%d %H:%M} UTC"
                      if ends and ends > _now() else "The fallback certificate is served")
            notifications.add(f"Certificate for {name} could not be obtained",
                              f"The CA refused the order: {message}. {served}; the order is retried "
                              "automatically.")
            failed.append(f"{name}: {message}")
        else:
            acme_orders.clear_failure(name)
            issued.append(name)
    if issued or failed:
        # Also after failures only: the reload drops the challenge answers of the orders.
        task.progress(96, "Serving the new certificates")
        acme_orders.refresh_proxy()
    if failed:
        raise RuntimeError("; ".join(failed))
    task.progress(100, f"{len(issued)} certificate(s) issued")
    return {"issued": issued}


def refresh(task: TaskContext, **_: object) -> None:
    """Serve the certificates as they are now (after an upload or removal)."""
    task.progress(50, "Reloading the reverse proxy with the current certificates")
    acme_orders.refresh_proxy()
    task.progress(100, "Done")


def renewal_check(fire_time: float | None = None, **_: object) -> None:
    """The hourly schedule: queue a renewcerts task when a served name is missing its certificate or
    expires within 30 days (failed names wait out their back-off); notify about certificates ending
    within 14 days that nothing renews (domains.expiry_notices)."""
    del fire_time
    with hostnames.domains_read_once():
        if acme_orders.due(acme_orders.served_names(), respect_backoff=True) and not acme_orders.renewal_running():
            acme_orders.queue(scheduled=True)
        expiry_notices.check()


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def prepare_dashboard(task: TaskContext, domain: str, **_: object) -> None:
    """The prepareDashboardDomain task: record and certificate of `my.<domain>`, then served."""
    task.progress(10, f"Writing the DNS record of the dashboard on {domain}")
    try:
        fqdn = dashboard.prepare_records_and_certificate(task.log, domain)
    except acme_client.AcmeError as e:
        notifications.add(f"Certificate for the dashboard on {domain} could not be obtained",
                          f"The CA refused the order: {e}.")
        raise RuntimeError(str(e)) from None
    task.progress(90, "Serving the certificate")
    acme_orders.refresh_proxy()
    task.progress(100, f"{fqdn} is ready")
