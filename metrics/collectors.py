"""Metrics read from the database and the machine when Prometheus scrapes: tasks, apps, backups,
certificates, and the server's processes. Reading at scrape time keeps them exact whichever
process (a worker, a task process, another node) did the work, and costs nothing between scrapes.
"""
import datetime
import os
from collections import Counter as Tally
from collections.abc import Iterator

import psutil
from cryptography import x509
from prometheus_client.core import GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector

import domains
import reverse_proxy
from models import Task
from models.apps import App
from models.backups import Backup

_EPOCH = datetime.datetime(1970, 1, 1)


def _seconds(moment: datetime.datetime | str | None) -> float | None:
    if moment is None:
        return None
    if isinstance(moment, str):  # SQLite hands back the stored text
        moment = datetime.datetime.fromisoformat(moment)
    return (moment.replace(tzinfo=None) - _EPOCH).total_seconds()


def _outcome(task) -> str:
    if task.pending:
        return "pending"
    if task.active:
        return "running"
    if task.success:
        return "success"
    return "stopped" if task.stop_reason else "failed"


class TaskCollector(Collector):
    def collect(self) -> Iterator:
        counts = GaugeMetricFamily("berth_tasks", "Tasks in the task table per type and outcome",
                                   labels=["type", "outcome"])
        durations = SummaryMetricFamily("berth_task_duration_seconds",
                                        "Run time of finished tasks per type and outcome",
                                        labels=["type", "outcome"])
        tally, spent = Tally(), {}
        rows = Task.select(Task.type, Task.pending, Task.active, Task.success, Task.stop_reason,
                           Task.started_at, Task.ts)
        for task in rows.iterator():
            outcome = _outcome(task)
            tally[(task.type, outcome)] += 1
            started, ended = _seconds(task.started_at), _seconds(task.ts)
            if outcome not in ("pending", "running") and started is not None and ended is not None:
                count, total = spent.get((task.type, outcome), (0, 0.0))
                spent[(task.type, outcome)] = (count + 1, total + max(0.0, ended - started))
        for (kind, outcome), n in sorted(tally.items()):
            counts.add_metric([kind, outcome], n)
        for (kind, outcome), (count, total) in sorted(spent.items()):
            durations.add_metric([kind, outcome], count, total)
        queued = sum(n for (_, outcome), n in tally.items() if outcome == "pending")
        running = sum(n for (_, outcome), n in tally.items() if outcome == "running")
        yield counts
        yield durations
        yield GaugeMetricFamily("berth_task_queue_length", "Tasks waiting for a runner", value=queued)
        yield GaugeMetricFamily("berth_tasks_running", "Tasks running now", value=running)


class AppCollector(Collector):
    def collect(self) -> Iterator:
        apps = GaugeMetricFamily("berth_apps", "Apps per installation state, run state and health",
                                 labels=["installation_state", "run_state", "health"])
        tally = Tally((a.installation_state, a.run_state or "", a.health or "unknown")
                      for a in App.select(App.installation_state, App.run_state, App.health))
        for labels, n in sorted(tally.items()):
            apps.add_metric(list(labels), n)
        yield apps


class BackupCollector(Collector):
    """The last good backup of the platform (`box`) and of each app: age, size, duration; and
    failed backups per target. A missing series means no good backup yet (alert on absence)."""

    def collect(self) -> Iterator:
        now = _seconds(datetime.datetime.now(datetime.timezone.utc))
        age = GaugeMetricFamily("berth_backup_last_age_seconds", "Age of the last good backup",
                                labels=["target"])
        size = GaugeMetricFamily("berth_backup_last_size_bytes", "Bytes stored by the last good backup",
                                 labels=["target"])
        took = GaugeMetricFamily("berth_backup_last_duration_seconds", "Run time of the last good backup",
                                 labels=["target"])
        failures = GaugeMetricFamily("berth_backup_failures", "Backups that failed, per target",
                                     labels=["target"])
        last, failed = {}, Tally()
        rows = Backup.select(Backup.type, Backup.app_id, Backup.state, Backup.size, Backup.task_id,
                             Backup.creation_time).order_by(Backup.creation_time)
        for backup in rows.iterator():
            target = backup.app_id or backup.type
            if backup.state == "normal":
                last[target] = backup
            elif backup.state == "error":
                failed[target] += 1
        runs = {t.id: t for t in Task.select(Task.id, Task.started_at, Task.ts)
                .where(Task.id.in_([b.task_id for b in last.values() if b.task_id]))}
        for target, backup in sorted(last.items()):
            age.add_metric([target], max(0.0, now - _seconds(backup.creation_time)))
            size.add_metric([target], backup.size or 0)
            run = runs.get(backup.task_id)
            if run is not None and run.started_at is not None:
                took.add_metric([target], max(0.0, _seconds(run.ts) - _seconds(run.started_at)))
        for target, n in sorted(failed.items()):
            failures.add_metric([target], n)
        yield from (age, size, took, failures)


class CertificateCollector(Collector):
    def collect(self) -> Iterator:
        expiry = GaugeMetricFamily("berth_certificate_expiry_timestamp_seconds",
                                   "When the certificate nginx serves for a name ends (Unix time)",
                                   labels=["domain"])
        names = {n for spec in reverse_proxy.vhosts().values()
                 for n in [spec["fqdn"], *spec["aliases"], *spec["redirects"]]}
        for name in sorted(names):
            cert_path, _ = domains.certificate_files(name)
            try:
                with open(cert_path, "rb") as f:
                    cert = x509.load_pem_x509_certificates(f.read())[0]
            except (OSError, ValueError):
                continue
            expiry.add_metric([name], cert.not_valid_after_utc.timestamp())
        yield expiry


class ProcessCollector(Collector):
    """Memory and CPU of the server: the gunicorn master and everything below it (workers, task
    processes). prometheus-client's own process collector sees one process only."""

    def collect(self) -> Iterator:
        me = psutil.Process(os.getpid())
        top = me.parent() if me.parent() is not None and "gunicorn" in " ".join(me.parent().cmdline()) else me
        rss, cpu, count = 0, 0.0, 0
        for proc in [top, *top.children(recursive=True)]:
            try:
                with proc.oneshot():
                    rss += proc.memory_info().rss
                    times = proc.cpu_times()
                    cpu += times.user + times.system
                    count += 1
            except psutil.Error:
                continue
        yield GaugeMetricFamily("berth_process_resident_memory_bytes",
                                "Resident memory of the server's processes", value=rss)
        yield GaugeMetricFamily("berth_process_cpu_seconds", "CPU time used by the server's processes",
                                value=cpu)
        yield GaugeMetricFamily("berth_processes", "Processes of the server (master, workers, tasks)",
                                value=count)


ALL = (TaskCollector, AppCollector, BackupCollector, CertificateCollector, ProcessCollector)
