"""The A (and AAAA) records that follow the apps: written through each domain's DNS provider when an app is
installed, moved or given aliases/redirects, removed when it goes, and re-written by the
`syncDnsRecords` task.

Every name here is a full host name (what apps.fqdn and vhost specs hold); the domain it is on
and its name relative to the DNS zone come from the domains table. Domains whose provider writes
nothing (noop, manual, wildcard) are skipped: their records are the admin's.

Whose record is it? Berth points names at one address, this server's public IP
(domains.public_address: the sysinfo config, else BERTH_PUBLIC_IP), and its IPv6 address too when
it has one (AAAA records, under the same rules). A name whose A record holds
anything else was made by someone else: installing over it needs `overwriteDns` (409 otherwise,
checked before the task is queued), and removing an app leaves it alone. With no public IP known, Berth cannot write a
correct record, so it writes none and says so in the task log.
"""
from collections.abc import Callable, Iterable

import dns_providers
import eventlog
import tasks
from core.errors import Conflict, DependencyFailed, NotFound
from domains import hostnames, public_address
from models import Domain
from models.apps import App
from tasks.context import TaskContext

Log = Callable[[str], None]


def provider_for(dom: Domain) -> dns_providers.DnsProvider:
    return dns_providers.create(dom.provider, dom.zone_name or dom.domain, dom.config or {})


def _relative(fqdn: str, zone: str) -> str:
    return "" if fqdn == zone else fqdn[: -len(zone) - 1]


def _targets(fqdns: Iterable[str]):
    """(fqdn, Domain, name in its zone) for each name on a domain whose provider writes records."""
    for fqdn in dict.fromkeys(hostnames.normalise(f) for f in fqdns if f):
        dom = hostnames.domain_for_host(fqdn)
        if dom is None or not dns_providers.writes(dom.provider):
            continue
        zone = dom.zone_name or dom.domain
        if fqdn == zone or fqdn.endswith("." + zone):
            yield fqdn, dom, _relative(fqdn, zone)


def app_hosts(app: App) -> list[str]:
    """Every name an app answers on: its location, aliases and redirects."""
    extras = (app.alternate_domains or []) + (app.redirect_domains or [])
    return [hostnames.fqdn(app.location, app.domain)] + [
        hostnames.fqdn(d.get("subdomain", ""), d["domain"]) for d in extras if isinstance(d, dict)]


def _addresses() -> dict[str, str]:
    """The record types Berth writes and the address each holds: A with the public IPv4 address,
    AAAA with the public IPv6 one; a type whose address is unknown is left out."""
    found = {"A": public_address.detect(), "AAAA": public_address.detect_ipv6()}
    return {rtype: ip for rtype, ip in found.items() if ip}


def conflicts(fqdns: Iterable[str]) -> list[str]:
    """The names whose A record (or AAAA record, when this server has an IPv6 address) exists and
    points somewhere else than this server."""
    targets = list(_targets(fqdns))
    addresses = _addresses() if targets else {}
    found = []
    for fqdn, dom, name in targets:
        provider = provider_for(dom)
        for rtype in ("A", *(["AAAA"] if "AAAA" in addresses else [])):
            try:
                values = provider.get_records(name, rtype)
            except dns_providers.DnsError as e:
                raise DependencyFailed(str(e)) from None
            if values and values != [addresses.get(rtype)]:
                found.append(fqdn)
                break
    return found


def check_overwrite(fqdns: Iterable[str], overwrite: bool) -> None:
    """409 unless `overwrite` when a name already has someone else's A record (called before an
    install or location change is queued)."""
    if overwrite:
        return
    taken = conflicts(fqdns)
    if taken:
        raise Conflict(f"DNS record already exists for {', '.join(taken)} (set overwriteDns to replace it)")


def add(log: Log, fqdns: Iterable[str]) -> None:
    """Point each name at this server: A, and AAAA when it has an IPv6 address (the conflict
    check ran when the task was queued)."""
    targets = list(_targets(fqdns))
    addresses = _addresses() if targets else {}
    if targets and not addresses:
        log("DNS: public IP unknown (no sysinfo config or BERTH_PUBLIC_IP); not writing records for "
            + ", ".join(t[0] for t in targets))
        return
    for fqdn, dom, name in targets:
        provider = provider_for(dom)
        for rtype, ip in addresses.items():
            log(f"DNS: {fqdn} {rtype} {ip} ({dom.provider})")
            provider.upsert_records(name, rtype, [ip])


def remove(log: Log, fqdns: Iterable[str]) -> None:
    """Remove the A/AAAA records Berth made for these names; records pointing elsewhere stay. With
    no IPv6 address known, AAAA records are not Berth's and are not touched."""
    targets = list(_targets(fqdns))
    addresses = _addresses() if targets else {}
    for fqdn, dom, name in targets:
        provider = provider_for(dom)
        for rtype in ("A", *(["AAAA"] if "AAAA" in addresses else [])):
            values = provider.get_records(name, rtype)
            if not values:
                continue
            ip = addresses.get(rtype)
            if ip and values != [ip]:
                log(f"DNS: {fqdn} {rtype} points at {', '.join(values)}, not this server; left in place")
                continue
            log(f"DNS: removing {fqdn} {rtype} ({dom.provider})")
            provider.delete_records(name, rtype)


def repoint(log: Log, fqdns: Iterable[str], old: str, new: str, rtype: str = "A") -> list[str]:
    """Dynamic DNS: move to `new` every `rtype` (A or AAAA) record of these names that holds
    exactly `old` (records pointing anywhere else are someone else's and stay). Returns the names
    moved; a provider failure is logged and the other names still move."""
    moved = []
    for fqdn, dom, name in _targets(fqdns):
        try:
            provider = provider_for(dom)
            if provider.get_records(name, rtype) == [old]:
                provider.upsert_records(name, rtype, [new])
                log(f"DNS: {fqdn} {rtype} {old} -> {new} ({dom.provider})")
                moved.append(fqdn)
        except dns_providers.DnsError as e:
            log(f"DNS: {fqdn}: {e}")
    return moved


def write_mail_records(domain: str, records: list[tuple[str, str, list[str]]]) -> bool:
    """Write a mail domain's records (MX, SPF, DKIM, DMARC; from mail.status) through the domain's
    provider: `records` holds (name relative to the domain, "" for the domain itself, type, values).
    Returns False when the provider writes nothing (noop, manual, wildcard: the admin's records);
    DnsError when the provider refuses."""
    dom = Domain.get_or_raise(NotFound(f"No such domain: {domain}"), Domain.domain == hostnames.normalise(domain))
    if not dns_providers.writes(dom.provider):
        return False
    zone = dom.zone_name or dom.domain
    provider = provider_for(dom)
    for name, rtype, values in records:
        fqdn = f"{name}.{dom.domain}" if name else dom.domain
        provider.upsert_records(_relative(fqdn, zone), rtype, values)
    return True


def all_hosts() -> list[str]:
    """Every name Berth keeps a record for: each app's names and the dashboard's."""
    from domains import dashboard  # dashboard imports records, which imports this module
    names = [f for app in App.select() if app.installation_state != "pending_uninstall"
             for f in app_hosts(app)]
    return names + [n for n in [dashboard.admin_fqdn()] if n]


def sync_all(task: TaskContext, domain: str | None = None, **_: object) -> None:
    """Task body `dns.sync` (type syncDnsRecords): re-write the A/AAAA records of every app (of one
    domain when given). A failing domain does not stop the others; the task fails at the end
    naming them."""
    domain = hostnames.normalise(domain) if domain else None
    apps = [a for a in App.select().order_by(App.id) if a.installation_state != "pending_uninstall"]
    failed = []
    for i, app in enumerate(apps):
        names = [f for f in app_hosts(app)
                 if domain is None or (hostnames.domain_for_host(f) or Domain()).domain == domain]
        task.progress(int(100 * i / max(len(apps), 1)), f"Syncing DNS of {names[0] if names else app.id}")
        try:
            add(task.log, names)
        except dns_providers.DnsError as e:
            task.log(f"DNS: {e}")
            failed.append(str(e))
    if failed:
        raise dns_providers.DnsError("; ".join(failed))
    task.progress(100, "DNS records synced")


def start_sync(actor: eventlog.Actor, domain: str | None = None, kind: str | None = None) -> int:
    """Queue the syncDnsRecords task (POST /cloudron/sync_dns). Mail records (`type: mail`) have
    nothing to write until Berth serves mail, so that sync is the app records' sync too."""
    if domain:
        domain = hostnames.normalise(domain)
        Domain.get_or_raise(NotFound(f"No such domain: {domain}"), Domain.domain == domain)
    task_id = tasks.start("syncDnsRecords", "dns.sync", {"domain": domain or None}, locks=["dns"])
    eventlog.record("dns.sync", actor, domain=domain, type=kind, taskId=task_id)
    return task_id
