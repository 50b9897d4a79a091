"""Task bodies and schedule actions used by the task-engine tests (no tests in here).

They are real bodies run by the real runner in real task processes; the tests queue them with
`tasks.start("<type>", "test.<name>", ...)` (tasks.registry, BERTH_TEST_TASK_BODIES) against a server's database (no
API route starts an arbitrary task). Kept free of test-only imports: task processes import it.
"""
import os
import signal
import time


def steps(task, count=5, delay=0.3, result=None):
    """Progress through `count` steps, a log line and a percent each."""
    for i in range(count):
        task.progress(percent=int(100 * i / count), message=f"step {i + 1} of {count}")
        time.sleep(delay)
    return result if result is not None else {"steps": count}


def ticker(task, lines=10, interval=0.2, prefix="tick"):
    """Write `lines` log lines, `interval` seconds apart (print and logging both)."""
    for i in range(lines):
        if i % 2:
            print(f"{prefix} {i}")
        else:
            task.log(f"{prefix} {i}")
        time.sleep(interval)
    return {"lines": lines}


def sleeper(task, seconds=60, ignore_sigterm=False):
    """Sleep; optionally ignore SIGTERM so only SIGKILL ends it."""
    print(f"pid {os.getpid()}")
    if ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    task.progress(percent=10, message="sleeping")
    time.sleep(seconds)
    return {"slept": seconds}


def blocking_read(task):
    """Block in read(2) on a pipe nobody writes to."""
    read_end, write_end = os.pipe()
    task.progress(percent=5, message="reading")
    os.read(read_end, 1)
    return "unreachable"


def failing(task, message="it broke"):
    task.log("about to fail")
    raise RuntimeError(message)


def crashing(task):
    task.log("about to die")
    os.kill(os.getpid(), signal.SIGKILL)


def record_fire(fire_time, type="syncDnsRecords"):
    """Schedule action: queue a task whose result is the planned fire time."""
    import tasks
    tasks.start(type, "test.echo", {"value": fire_time})


def echo(task, value=None):
    return value
