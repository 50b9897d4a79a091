"""The /metrics answer: every sample in Prometheus' text format, made by prometheus-client.

Set-up (`install`, once per server process) starts timing SQL statements; `render` builds the
scrape: samples recorded by every process of the server (multiprocess mode when several
workers share them) plus the collectors that read the database and the machine.
"""
import functools
import os
import shutil
import time
from typing import Any

from core import data_paths


def prepare_shared_files(data_dir: str) -> str:
    """Empty the folder where server processes write their samples and return it. Called by
    `berth serve` before the workers start (old files would add a dead run's counts)."""
    folder = data_paths.metrics_files(data_dir)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    return folder


def install(db: Any) -> None:
    """Time every SQL statement `db` runs (the server process's database connection)."""
    from metrics import instruments
    if getattr(db.execute_sql, "timed", False):
        return
    untimed = db.execute_sql
    observe = instruments.db_query_seconds.observe

    @functools.wraps(untimed)
    def execute_sql(*args, **kwargs):
        started = time.perf_counter()
        try:
            return untimed(*args, **kwargs)
        finally:
            observe(time.perf_counter() - started)

    execute_sql.timed = True
    db.execute_sql = execute_sql


def forget_process(pid: int) -> None:
    """A server process ends: its live gauges (open log streams) no longer count."""
    from metrics import instruments
    if instruments.MULTIPROCESS:
        from prometheus_client import multiprocess
        multiprocess.mark_process_dead(pid)


def render() -> tuple[bytes, str]:
    """(body, content type) of one scrape."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    from metrics import collectors, instruments
    if instruments.MULTIPROCESS:
        from prometheus_client import multiprocess
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        registry.register(_Forward(REGISTRY))
    for collector in collectors.ALL:
        registry.register(collector())
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _Forward:
    """The samples this one process recorded (single-process mode), minus the library's default
    process/platform collectors: ProcessCollector covers the whole server instead."""

    def __init__(self, registry):
        self.registry = registry

    def collect(self):
        for family in self.registry.collect():
            if family.name.startswith("berth_"):
                yield family
