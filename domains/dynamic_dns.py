"""Dynamic DNS: while on (`dynamic_dns` setting), a schedule re-detects the public address
(domains.public_address) and, when it changed, moves every record Berth keeps that still points
at the old address to the new one (domains.dns_records.repoint), recording a `dyndns.update` event.

The address the records were written with is remembered (setting `dynamic_dns_address`) when
dynamic DNS is turned on and after each check; a check that cannot detect the address changes
nothing and tries again at the next firing.
"""
import logging

import eventlog
from core import config
from domains import dns_records, public_address
from models import Setting
from tasks import schedules

SETTING = "dynamic_dns"
LAST_ADDRESS = "dynamic_dns_address"
LAST_ADDRESS6 = "dynamic_dns_address6"     # the same for the IPv6 address and AAAA records
SCHEDULE = "dynamic-dns"
ACTION = "dns.dynamic_check"

log = logging.getLogger("berth")


def enabled() -> bool:
    return bool(Setting.read(SETTING, False))


def set_enabled(actor: eventlog.Actor, on: bool) -> None:
    """Turn dynamic DNS on (remember the address now, install the schedule) or off."""
    Setting.put(SETTING, bool(on))
    if on:
        for setting, current in ((LAST_ADDRESS, public_address.detect()),
                                 (LAST_ADDRESS6, public_address.detect_ipv6())):
            if current:
                Setting.put(setting, current)
        schedules.save(SCHEDULE, config.get().dynamic_dns_pattern, ACTION)
    else:
        schedules.remove(SCHEDULE)
    eventlog.record("settings.dynamic_dns", actor, enabled=bool(on))


def check(fire_time: float | None = None, **_: object) -> list[str]:
    """The schedule's action: repoint the records when the address changed. Returns the names moved."""
    del fire_time
    if not enabled():
        return []
    new = public_address.detect()
    if not new:
        log.warning("dynamic DNS: the public address could not be detected; records left as they are")
        return []
    moved = _move("A", LAST_ADDRESS, new)
    new6 = public_address.detect_ipv6()
    if new6:     # no IPv6 address found: AAAA records are left as they are
        moved += [f for f in _move("AAAA", LAST_ADDRESS6, new6) if f not in moved]
    return moved


def _move(rtype: str, setting: str, new: str) -> list[str]:
    """Repoint the `rtype` records from the remembered address to `new` (one event when moved)."""
    old = Setting.read(setting)
    if old == new:
        return []
    lines = []
    moved = dns_records.repoint(lines.append, dns_records.all_hosts(), old, new, rtype) if old else []
    for line in lines:
        log.info("dynamic DNS: %s", line)
    Setting.put(setting, new)
    if old:
        eventlog.record("dyndns.update", eventlog.SYSTEM, fromIp=old, toIp=new, records=moved)
    return moved
