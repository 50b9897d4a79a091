"""What the kernel says about a process (through psutil): Berth checks its own helpers (nginx,
task runners) this way, and tells a reused pid apart by its start time."""
from collections.abc import Callable, Iterable

import psutil

GONE = (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)  # a zombie is dead, only not reaped yet


def _process(pid):
    try:
        return psutil.Process(pid)
    except (psutil.NoSuchProcess, ValueError):
        return None


def alive(pid: int) -> bool:
    """Is `pid` a running process (not a zombie)?"""
    proc = _process(pid)
    try:
        return proc is not None and proc.status() not in GONE
    except psutil.NoSuchProcess:
        return False


def start_time(pid: int) -> str:
    """When `pid` started ('' if it does not exist): tells a reused pid apart."""
    proc = _process(pid)
    try:
        return f"{proc.create_time():.2f}" if proc else ""
    except psutil.NoSuchProcess:
        return ""


def children(pid: int) -> list[int]:
    """Live child processes of `pid`."""
    proc = _process(pid)
    if proc is None:
        return []
    kids = []
    for child in proc.children():
        try:
            if child.status() not in GONE:
                kids.append(child.pid)
        except psutil.NoSuchProcess:
            pass
    return kids


def cmdline(pid: int) -> list[str]:
    """The command line of `pid` ([] when it is gone or unreadable)."""
    proc = _process(pid)
    try:
        return proc.cmdline() if proc else []
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def find(predicate: Callable[[list[str]], bool]) -> list[int]:
    """Pids of live processes whose command line satisfies `predicate(argv)`."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        info = proc.info
        if info["status"] not in GONE and info["cmdline"] and predicate(info["cmdline"]):
            found.append(proc.pid)
    return found


def open_files(pid: int) -> list[str]:
    """Paths of the regular files `pid` has open ([] when it is gone or unreadable)."""
    proc = _process(pid)
    try:
        return [f.path for f in proc.open_files()] if proc else []
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def memory_used(pids: Iterable[int]) -> int:
    """Resident memory (bytes) of these processes together; gone ones count 0. What /services
    reports for host services (nginx master + workers, dockerd)."""
    total = 0
    for pid in pids:
        proc = _process(pid)
        try:
            total += proc.memory_info().rss if proc else 0
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def total_memory() -> int:
    """The machine's physical memory in bytes: the base of a host service's memory percent."""
    return psutil.virtual_memory().total
