"""What the benchmarks share, so each script says only what it measures.

A script in bench/ imports this first (`import common`: the script's own folder is first on
sys.path); importing it puts the repository and tests/ on sys.path, so Berth's packages and
`support` (the test harness) import. Then: a real Berth started and activated the way the tests
do it, an app installed and waited for until healthy, a task waited for, and `run`, which turns
any failure into exit status 2 and always cleans up (a benchmark reports, it does not fail CI).
"""
import http.client
import os
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
if ROOT not in sys.path:
    sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from support.harness import Api, BerthServer, remove_app_containers, stop_proxy  # noqa: E402

OWNER = {"username": "owner", "password": "Owner-pass-1", "email": "owner@example.com"}


def start_server(tmp: str, env: dict) -> BerthServer:
    """A real Berth (gunicorn + SQLite) with its data dir at tmp/berth, started."""
    data_dir = os.path.join(tmp, "berth")
    os.makedirs(data_dir)
    return BerthServer(data_dir=data_dir, env=env).start()


def activate(server: BerthServer, domain: str, *, through_setup: bool = False) -> Api:
    """Activates the owner and adds `domain` (noop DNS); the owner's Api. With through_setup the
    domain comes through POST /cloudron/setup before activation (it is then the dashboard's
    domain, as the mail bench needs); else through POST /domains after it."""
    anon = Api(server.api)
    noop = {"provider": "noop", "domain": domain, "config": {}}
    if through_setup:
        anon.post("/cloudron/setup", json={"dnsConfig": noop}).raise_for_status()
    r = anon.post("/cloudron/activate", json=OWNER)
    r.raise_for_status()
    api = anon.with_token(r.json()["token"])
    if not through_setup:
        api.post("/domains", json=noop).raise_for_status()
    return api


def post_install(api: Api, manifest: dict, location: str, domain: str) -> dict:
    """POST /apps/install; its answer ({"id", "taskId"})."""
    r = api.post("/apps/install", json={"manifest": manifest, "location": location, "domain": domain,
                                        "accessRestriction": None})
    if r.status_code != 202:
        raise RuntimeError(f"install answered {r.status_code}: {r.text}")
    return r.json()


def wait_healthy(api: Api, app_id: str, poll: float, timeout: float | None = None) -> None:
    """Polls GET /apps/{id} every `poll` s until the app is installed and healthy (no limit when
    timeout is None); raises when the install failed or the time is up."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        app = api.get(f"/apps/{app_id}").json()
        if app["installationState"] == "installed" and app["health"] == "healthy":
            return
        if app["installationState"] == "error":
            raise RuntimeError(f"install failed: {app['error']}")
        if deadline is not None and time.monotonic() > deadline:
            raise RuntimeError(f"app {app_id} not healthy after {timeout} s: {app['installationState']}")
        time.sleep(poll)


def wait_task(api: Api, task_id: str, poll: float, timeout: float | None = None) -> dict:
    """The task once it is neither active nor pending (no limit when timeout is None)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        task = api.get(f"/tasks/{task_id}").json()
        if not task["active"] and not task["pending"]:
            return task
        if deadline is not None and time.monotonic() > deadline:
            raise RuntimeError(f"task {task_id} still running after {timeout}s")
        time.sleep(poll)


def uninstall(api: Api, app_id: str, poll: float, timeout: float | None = None) -> None:
    """POST /apps/{id}/uninstall and wait for its task; raises when it failed."""
    r = api.post(f"/apps/{app_id}/uninstall")
    r.raise_for_status()
    task = wait_task(api, r.json()["taskId"], poll, timeout)
    if not task["success"]:
        raise RuntimeError(f"uninstall of {app_id} failed: {task['error']}")


def run(make, measure):
    """make() builds the bench, measure(bench) measures; the bench's cleanup() runs whatever
    happened. measure's result, or None (exit status 2) after printing why it could not run and,
    when the bench has a Berth server, the end of its log."""
    try:
        bench = make()
    except Exception as e:  # noqa: BLE001
        print(f"cannot run: {e}")
        return None
    try:
        return measure(bench)
    except Exception as e:  # noqa: BLE001
        print(f"benchmark failed: {e}")
        if getattr(bench, "server", None) is not None:
            print(bench.server.log()[-2000:])
        return None
    finally:
        bench.cleanup()


def stop_berth(server: BerthServer | None, tmp: str, app_ids) -> None:
    """Stop a bench's Berth (server in tmp/berth), its nginx and the app containers it made,
    whatever happened before: each bench's cleanup then removes what else it made."""
    try:
        if server is not None:
            server.stop()
    finally:
        stop_proxy(os.path.join(tmp, "berth"))
        remove_app_containers(app_ids)


def published_port(container, port: int) -> int:
    """The 127.0.0.1 port the engine published a container's `port` on (run with ports={..: None})."""
    container.reload()
    return int(container.attrs["NetworkSettings"]["Ports"][f"{port}/tcp"][0]["HostPort"])


def wait_answering(port: int, path: str, what: str, timeout: float = 60) -> None:
    """GET http://127.0.0.1:<port><path> until it answers 2xx/3xx: a container run by hand, polled
    as Berth's own health wait polls an app (apps.probe.wait_healthy: 5 ms at first, the pause
    growing by half up to 100 ms), so both sides of a comparison wait alike. Written out rather
    than imported, so a bench run against an older tree still waits the same way."""
    deadline, pause = time.monotonic() + timeout, 0.005
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", path)
            if 200 <= conn.getresponse().status < 400:
                return
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} never answered {path}")
        time.sleep(pause)
        pause = min(0.1, pause * 1.5)
