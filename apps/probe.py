"""Asking an app over HTTP whether it is up: one GET of its health-check path on the host port
its container publishes on 127.0.0.1 (probe), or polling until it answers (wait_healthy).

Not Docker, so not in `containers`; the container's state only helps explain a failed wait.
"""
import http.client
import time
from collections.abc import Callable

import containers

FIRST_INTERVAL = 0.005  # seconds between the first polls of wait_healthy


def probe(host_port: int, path: str, timeout: float = 2.0) -> tuple[int | None, str]:
    """One GET of http://127.0.0.1:<host_port><path>: (status or None, reason text)."""
    conn = http.client.HTTPConnection(containers.PUBLISH_IP, host_port, timeout=timeout)
    try:
        conn.request("GET", path or "/", headers={"User-Agent": "berth-health"})
        response = conn.getresponse()
        response.read(65536)
        return response.status, f"HTTP {response.status}"
    except (OSError, http.client.HTTPException) as exc:
        return None, (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                      or type(exc).__name__)
    finally:
        conn.close()


def _container_state(app_id):
    info = containers.inspect(app_id)
    if info is None:
        return "; container missing"
    return (f"; container {info['status']}, exit code {info['exit_code']}, "
            f"restarted {info['restart_count']} times" + (", OOM killed" if info["oom_killed"] else ""))


def wait_healthy(host_port: int, path: str, timeout: float = 60.0, log: Callable[[str], None] = lambda line: None,
                 app_id: str | None = None, interval: float = 0.1, slow: Callable[[], None] | None = None,
                 slow_after: float | None = None) -> int:
    """Poll http://127.0.0.1:<host_port><path> until it answers 2xx/3xx; returns the status.
    Raises containers.ContainerError naming the last status or error (and, given `app_id`, the
    container's state) after `timeout` seconds. Each change of outcome is reported through `log`.
    Polls every FIRST_INTERVAL at first, the wait growing to `interval`: most apps answer within
    a few tens of milliseconds of their container starting, and a refused connection costs
    nothing. `slow` is called once when the wait has lasted `slow_after` seconds."""
    url = f"http://{containers.PUBLISH_IP}:{host_port}{path or '/'}"
    started = time.monotonic()
    deadline = started + timeout
    last = None
    pause = min(FIRST_INTERVAL, interval)
    while True:
        status, reason = probe(host_port, path, timeout=min(5.0, max(0.5, timeout)))
        if status is not None and 200 <= status < 400:
            log(f"{url} answered HTTP {status}")
            return status
        if reason != last:
            log(f"Waiting for {url}: {reason}")
            last = reason
        if time.monotonic() >= deadline:
            state = _container_state(app_id) if app_id is not None else ""
            # A ContainerError, as before the move: the app's error names it as its reason.
            raise containers.ContainerError(f"Health check {url} failed after {timeout:g} s (last: {reason}){state}")
        if slow is not None and slow_after is not None and time.monotonic() - started >= slow_after:
            slow()
            slow = None
        time.sleep(pause)
        pause = min(interval, pause * 1.5)
