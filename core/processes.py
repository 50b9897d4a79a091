"""What /proc says about a process: Berth checks its own helpers (nginx, task runners) this way."""
import os

GONE = ("Z", "X")  # zombie (dead, not reaped: common in containers whose init does not reap) or dead


def stat(pid):
    """(state, ppid, start time in clock ticks) of process `pid`, or None when there is none."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    # comm may contain spaces and parentheses; the fields after the last ')' are fixed.
    fields = data[data.rindex(")") + 2:].split()
    return fields[0], int(fields[1]), fields[19]


def alive(pid):
    """Is `pid` a running process (not a zombie)?"""
    info = stat(pid)
    return info is not None and info[0] not in GONE


def start_time(pid):
    """When `pid` started ('' if it does not exist): tells a reused pid apart."""
    info = stat(pid)
    return info[2] if info else ""


def children(pid):
    """Live child processes of `pid`."""
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = stat(int(entry))
            if info is not None and info[1] == pid and info[0] not in GONE:
                kids.append(int(entry))
    return kids
