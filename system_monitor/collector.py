"""The graphs collector: a schedule (tasks.schedules, action `system.collect_usage`) that every
BERTH_GRAPHS_INTERVAL seconds samples the machine and every app's container, stores the samples
(history.record), rolls up and prunes old ones (history.roll_up) and rotates Berth's log files.

The schedule fires in every server process and exactly one of them claims each firing; the
previous sample's counters are read from the database, so which process runs it does not matter.
"""
import logging
import time

import psutil

import containers
from core import config, data_paths
from models.apps import App
from models.usage import SYSTEM
from system_monitor import box_log, history
from tasks import schedules

log = logging.getLogger("berth.system")

SCHEDULE = "usage-graphs"
ACTION = "system.collect_usage"
# Interfaces whose traffic is counted elsewhere or is not the machine's: loopback, the engine's
# bridges and the per-container ends (their traffic also crosses the real interface).
VIRTUAL_NICS = ("lo", "veth", "docker", "br-", "virbr", "ifb")


def pattern(interval: int) -> str:
    """The schedule pattern (seconds field first) of an interval config.load accepted."""
    if interval < 60:
        return "* * * * * *" if interval == 1 else f"*/{interval} * * * * *"
    minutes = interval // 60
    return "0 * * * * *" if minutes == 1 else f"0 */{minutes} * * * *"


def register() -> None:
    """Create the collector's schedule, or change it when BERTH_GRAPHS_INTERVAL changed."""
    wanted = pattern(config.get().graphs_interval)
    row = schedules.get(SCHEDULE)
    if row is None:
        schedules.ensure(SCHEDULE, wanted, ACTION)
    elif row.pattern != wanted or row.action != ACTION:
        schedules.save(SCHEDULE, wanted, ACTION)


def system_counters() -> dict:
    """The machine's counters now: CPU seconds (busy, total), memory in use, disk and network
    bytes (cumulative), bytes used on the data dir's filesystem."""
    times = psutil.cpu_times()
    # guest time is already counted in user/nice on Linux (psutil.cpu_percent leaves it out too)
    total = sum(times) - getattr(times, "guest", 0) - getattr(times, "guest_nice", 0)
    idle = times.idle + getattr(times, "iowait", 0)
    vm = psutil.virtual_memory()
    counters = {"at": time.time(), "cpu_busy": total - idle, "cpu_total": total, "memory": vm.total - vm.available,
                "disk_used": psutil.disk_usage(data_paths.root()).used}
    disk = psutil.disk_io_counters()
    if disk is not None:
        counters.update(disk_read=disk.read_bytes, disk_write=disk.write_bytes)
    nics = [n for name, n in psutil.net_io_counters(pernic=True).items() if not name.startswith(VIRTUAL_NICS)]
    counters.update(net_rx=sum(n.bytes_recv for n in nics), net_tx=sum(n.bytes_sent for n in nics))
    return counters


def app_counters() -> dict[str, dict]:
    """{app id: counters} of every app whose container runs (none when the engine is down)."""
    found = {}
    for (app_id,) in App.select(App.id).tuples():
        try:
            counters = containers.usage_counters(app_id)
        except containers.ContainerError as e:
            log.warning("no usage sample of app %s: %s", app_id, e.message)
            continue
        except ValueError:  # an id that cannot name a container
            continue
        if counters is not None:
            counters["cpus"] = counters["cpus"] or psutil.cpu_count() or 1
            found[app_id] = {"at": time.time(), **counters}
    return found


def collect(fire_time: float | None = None) -> int:
    """One run of the schedule; returns how many samples were stored."""
    stored = 0
    for scope, counters in [(SYSTEM, system_counters()), *app_counters().items()]:
        history.record(scope, counters)
        stored += 1
    history.roll_up(time.time())
    box_log.rotate()
    return stored
