#!/usr/bin/env python3
"""Many open log streams against one server worker: does the API stay responsive, how fast does a
log line reach every client, and what does it cost the server and the engine? Measured in one run:

    .venv/bin/python bench/streams.py [--clients 5000] [--scenarios task,app,apps] [--lines 100]
                                      [--interval 0.1] [--apps 10] [--tokens 10]

1. Starts a real Berth (tests/support/harness.py: gunicorn + uvicorn worker, ONE worker, SQLite in
   a temp dir, its nginx on free 127.0.0.1 ports), activates it, makes --tokens API tokens (the
   per-token rate limit stays on: clients are spread over the tokens so it does not refuse them)
   and, for the app scenarios, installs --apps apps of the test image (tests/support/images.py).
2. Baseline: GET /cloudron/status latency with no stream open (--baseline seconds).
3. Per scenario, --clients asyncio raw-socket EventSource clients (bench/stream_clients.py, in
   --client-procs processes, a bare protocol each, no thread per client, scheduled as batch work
   so that they do not preempt the server they share the cores with) open their streams; then
   the lines start:
   - task: /tasks/{id}/logstream of a real task (`test.ticker`, this module's `ticker` through
     BERTH_TEST_TASK_BODIES) writing a line every --interval s;
   - app: /apps/{id}/logstream of one app; `tick <i>` is written to its container's PID 1 stdout
     every --interval s from the bench (the engine stamps each line on arrival);
   - apps: the same, the clients spread over --apps apps, each app written to at that rate.
   While the lines flow, GET /cloudron/status latency is measured again, and the server
   worker's and the engine's (dockerd) resident memory sampled. Each client notes when each
   line arrives; the line's realtimeTimestamp (the task process's or the engine's stamp, same
   host clock) is the reference.
4. Prints per scenario: status p50/p99 with the streams beside the baseline (ratio), line delivery
   p50/p99/max over every client x line and p99 of the time for a line to reach ALL its
   clients, clients receiving every line / any line / none, connect time, lines lost, CPU (and
   the server's CPU per delivered line, the figure a busy machine disturbs least), and
   server/engine memory.

Targets (issue 18): with 5,000 clients on one app, 5,000 over 10 apps, and 5,000 on one task
log: status p99 < 50 ms and line p99 < 200 ms, every client receiving. Exit status is 0 whatever
the figures; 2 if the benchmark could not run.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
if __name__ == "__main__":
    sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

TARGET_STATUS_P99_MS, TARGET_LINE_P99_MS = 50.0, 200.0
DOMAIN = "example.test"


# ---- the task body (runs in the task process; keep this module importable there) -----------------

def ticker(task, go_file, lines=200, interval=0.1):
    """Wait for `go_file`, then write `lines` log lines on a fixed `interval` schedule."""
    task.progress(percent=1, message="waiting for clients")
    while not os.path.exists(go_file):
        time.sleep(0.02)
    start = time.monotonic()
    for i in range(lines):
        delay = start + i * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        task.log(f"tick {i}")
    return {"lines": lines}


# ---- measuring ---------------------------------------------------------------------------------

def probe_status(port, seconds, period=0.01):
    """Latencies (ms) of sequential GET /cloudron/status on one keep-alive connection."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t = time.perf_counter()
        conn.request("GET", "/api/v1/cloudron/status")
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            raise RuntimeError(f"status answered {r.status}")
        out.append((time.perf_counter() - t) * 1000)
        time.sleep(period)
    conn.close()
    return out


def pct(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def workers(server):
    import psutil
    master = psutil.Process(server.proc.pid)
    return [c for c in master.children() if "gunicorn" in " ".join(c.cmdline())]


def rss_mb(processes):
    total = 0
    for p in processes:
        try:
            total += p.memory_info().rss
        except Exception:  # noqa: BLE001 - gone or not ours to read
            pass
    return total / 2**20


def engine_procs():
    import psutil
    return [p for p in psutil.process_iter(["name"]) if p.info["name"] in ("dockerd", "containerd")]


def cpu_secs(processes):
    return sum(sum(p.cpu_times()[:2]) for p in processes)


def queued_secs(processes):
    """Seconds the processes' threads were runnable but waited for a CPU (/proc schedstat): on a
    machine busy with other work, what a starved server lost, as opposed to what it spent."""
    total = 0
    for p in processes:
        try:
            for tid in os.listdir(f"/proc/{p.pid}/task"):
                with open(f"/proc/{p.pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[1])
        except OSError:
            pass
    return total / 1e9


# ---- the bench -----------------------------------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="berth-bench-streams-")
        self.server = None
        self.app_ids = []
        self.docker = None

    def start(self):
        from support.harness import BerthServer
        # The per-token rate limit stays at its default: the clients are spread over the tokens.
        os.makedirs(os.path.join(self.tmp, "berth"))
        self.server = BerthServer(data_dir=os.path.join(self.tmp, "berth"), workers=1).start()
        import common
        self.api = common.activate(self.server, DOMAIN)
        self.tokens = [self.api.post("/tokens", json={"name": f"bench-{i}"}).json()["accessToken"]
                       for i in range(self.args.tokens)]

    def install_apps(self, count):
        import common
        import docker

        from support import images
        self.docker = docker.from_env()
        image = images.httpd_image(self.docker)
        manifest = {"manifestVersion": 2, "id": "io.berth.bench.httpd", "version": "1.0.0", "title": "bench",
                    "dockerImage": image, "httpPort": images.PORT, "healthCheckPath": images.HEALTH_PATH}
        for i in range(count):
            app = common.post_install(self.api, manifest, f"streams{i}", DOMAIN)
            self.app_ids.append(app["id"])
        for app_id in self.app_ids:
            common.wait_healthy(self.api, app_id, 0.2, timeout=120)

    def start_task(self, go_file):
        import tasks
        from models import database, open_database
        open_database("sqlite:///" + os.path.join(self.server.data_dir, "berth.db"))
        task_id = tasks.start("update", "test.ticker", {"go_file": go_file, "lines": self.args.lines,
                                                        "interval": self.args.interval}, timeout=600)
        database.close()
        return task_id

    def write_app_lines(self, app_ids):
        """`tick <i>` to each app's output every --interval s (the engine stamps it on arrival).
        Written from here, one thread for all apps, into each container's PID 1 stdout (the pipe
        the engine reads). Before, a shell loop per app (`echo; sleep` in `docker exec`) forked a
        `sleep` every line: with ten apps ~10% of one core (containers + engine), taken from the
        2 cores the server runs on, and the loops drifted. Each app keeps its own fixed phase
        (random, seeded), so lines of different apps arrive as unrelated apps' would."""
        import random
        phases = random.Random(18)
        outs = []
        for app_id in app_ids:
            container = self.docker.containers.list(filters={"label": f"berth.app-id={app_id}"})[0]
            outs.append((open(f"/proc/{container.attrs['State']['Pid']}/fd/1", "w", buffering=1),
                         phases.random() * self.args.interval))

        def write():
            start = time.monotonic()
            schedule = sorted((phase + i * self.args.interval, n, i) for n, (_, phase) in enumerate(outs)
                              for i in range(self.args.lines))
            for at, n, i in schedule:
                delay = start + at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                outs[n][0].write(f"tick {i}\n")
            for out, _ in outs:
                out.close()
        threading.Thread(target=write, daemon=True).start()

    def cleanup(self):
        import common  # here: this module is also imported by the task process (ticker)
        try:
            common.stop_berth(self.server, self.tmp, self.app_ids)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


def run_scenario(bench, name, paths, begin_lines):
    """`--clients` clients over `paths` (cycled, each with the next token); begin_lines() starts
    the writers once all are connected. The figures of this scenario."""
    import psutil
    args, server = bench.args, bench.server
    targets = [[paths[i % len(paths)], bench.tokens[i % len(bench.tokens)]]
               for i in range(max(len(paths), len(bench.tokens)))]
    per = [args.clients // args.client_procs + (i < args.clients % args.client_procs)
           for i in range(args.client_procs)]
    rss_idle, engine_idle = rss_mb(workers(server)), rss_mb(engine_procs())
    print(f"[{name}] opening {args.clients} clients on {len(paths)} stream(s) ...", flush=True)
    began, clients, offset = time.monotonic(), [], 0
    connect_profiler = None
    if args.profile:  # the connect phase too: what each new client costs the server
        connect_profiler = subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable), "py-spy"), "record", "--format", "raw", "-r", "200",
             "-d", "15", "-o", f"{args.profile}.{name.split()[0]}-{len(paths)}-connect.txt", "--pid",
             str(workers(server)[0].pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for n in per:
            clients.append(subprocess.Popen(
                [sys.executable, os.path.join(BENCH, "stream_clients.py"), "--n", str(n), "--port", str(server.port),
                 "--offset", str(offset), "--targets", json.dumps(targets)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
            offset += n
        for c in clients:
            if c.stdout.readline().strip() != "connected":
                raise RuntimeError("clients did not report back")
        connect_secs = time.monotonic() - began
        if connect_profiler is not None:
            connect_profiler.wait()
        server_procs, client_procs = workers(server), [psutil.Process(c.pid) for c in clients]
        peak = {"server": rss_mb(server_procs), "engine": rss_mb(engine_procs())}
        connected_rss = dict(peak)
        stop = threading.Event()

        def sample():
            while not stop.wait(1):
                peak["server"] = max(peak["server"], rss_mb(server_procs))
                peak["engine"] = max(peak["engine"], rss_mb(engine_procs()))
        threading.Thread(target=sample, daemon=True).start()
        cpu0 = cpu_secs(server_procs), cpu_secs(client_procs), time.monotonic(), queued_secs(server_procs)
        run_secs = args.lines * args.interval
        begin_lines()
        profiler = None
        if args.profile:  # py-spy (pip install py-spy; not a dependency) on the worker while lines flow
            spy = os.path.join(os.path.dirname(sys.executable), "py-spy")
            profiler = subprocess.Popen(
                [spy, "record", "--format", "raw", "-r", "200", "-d", str(int(run_secs)), "-o",
                 f"{args.profile}.{name.split()[0]}-{len(paths)}.txt", "--pid", str(server_procs[0].pid)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # first lines flowing
        during = probe_status(server.port, max(run_secs - 1.0, 1.0))
        time.sleep(args.grace)  # the writers' drift, the last (late) lines on their way
        if profiler is not None:
            profiler.wait()
        stop.set()
        elapsed = time.monotonic() - cpu0[2]
        server_cpu = cpu_secs(server_procs) - cpu0[0]
        cpu_server = server_cpu / elapsed * 100
        cpu_clients = (cpu_secs(client_procs) - cpu0[1]) / elapsed * 100
        queued = (queued_secs(server_procs) - cpu0[3]) / elapsed * 100
        deliveries, per_line, errors, lost, full, some, none = [], {}, {}, 0, 0, 0, 0
        for c in clients:
            out, _ = c.communicate("", timeout=300)
            data = json.loads(out.strip().splitlines()[-1])
            for key, count in data["errors"].items():
                errors[key] = errors.get(key, 0) + count
            for result in data["results"]:
                seen = {i for i, _ in result}
                lost += args.lines - len(seen)
                full += len(seen) == args.lines
                some += 0 < len(seen) < args.lines
                none += not seen
                for i, latency in result:
                    deliveries.append(latency * 1000)
                    per_line[i] = max(per_line.get(i, 0), latency * 1000)
    finally:
        for c in clients:
            if c.poll() is None:
                c.kill()
    return {"name": name, "streams": len(paths), "status": during, "deliveries": deliveries,
            "per_line": list(per_line.values()), "errors": errors, "lost": lost, "full": full, "some": some,
            "none": none, "connect_secs": connect_secs, "cpu_server": cpu_server, "cpu_clients": cpu_clients,
            "queued": queued, "server_cpu": server_cpu,
            "rss": (rss_idle, connected_rss["server"], peak["server"]),
            "engine": (engine_idle, connected_rss["engine"], peak["engine"])}


def report(args, base, r):
    b50, b99 = pct(base, 50), pct(base, 99)
    d50, d99 = pct(r["status"], 50), pct(r["status"], 99)
    line_p99, all_p99 = pct(r["deliveries"], 99), pct(r["per_line"], 99)
    ok = lambda met: "met" if met else "MISSED"  # noqa: E731
    print(f"\n{r['name']}: {args.clients} clients on {r['streams']} stream(s), a line every "
          f"{args.interval * 1000:g} ms for {args.lines} lines per stream")
    print(f"  GET /cloudron/status with streams: p50 {d50:6.1f} ms   p99 {d99:6.1f} ms   ({len(r['status'])} "
          f"requests)   vs baseline x{d50 / b50:.1f} / x{d99 / b99:.1f}   target p99 < "
          f"{TARGET_STATUS_P99_MS:g} ms: {ok(d99 < TARGET_STATUS_P99_MS)}")
    print(f"  line delivery, {len(r['deliveries'])} deliveries: p50 {pct(r['deliveries'], 50):.1f} ms   p99 "
          f"{line_p99:.1f} ms   max {max(r['deliveries'], default=float('nan')):.1f} ms   target p99 < "
          f"{TARGET_LINE_P99_MS:g} ms: {ok(line_p99 < TARGET_LINE_P99_MS)}")
    print(f"  a line to ALL its clients: p50 {pct(r['per_line'], 50):.1f} ms   p99 {all_p99:.1f} ms")
    print(f"  clients receiving every line {r['full']}, some {r['some']}, none {r['none']}   lines lost "
          f"{r['lost']}   refused/failed {sum(r['errors'].values())}   every client receiving: "
          f"{ok(r['full'] == args.clients)}")
    for error, count in sorted(r["errors"].items(), key=lambda e: -e[1])[:3]:
        print(f"    {count} x {error}")
    print(f"  connect time {r['connect_secs']:.1f} s   CPU while streaming: server worker "
          f"{r['cpu_server']:.0f}%, clients {r['cpu_clients']:.0f}% of one core; server threads runnable "
          f"but waiting for a CPU {r['queued']:.0f}% (a busy machine)")
    # What each delivered line cost the server (status probes included): less noisy than the
    # latencies on a shared machine, and what decides how many clients one worker keeps up with.
    print(f"  server worker CPU per delivered line: {r['server_cpu'] / max(len(r['deliveries']), 1) * 1e6:.1f} us")
    idle, connected, peak = r["rss"]
    e_idle, e_connected, e_peak = r["engine"]
    print(f"  server worker RSS: before {idle:.0f} MB, connected {connected:.0f} MB, peak {peak:.0f} MB "
          f"(+{(peak - idle) * 1024 / max(args.clients, 1):.0f} KB per client)   engine (dockerd+containerd) "
          f"RSS: before {e_idle:.0f} MB, peak {e_peak:.0f} MB (+{e_peak - e_idle:.0f} MB)")


def measure(bench):
    args = bench.args
    bench.start()
    scenarios = args.scenarios.split(",")
    if "app" in scenarios or "apps" in scenarios:
        print(f"installing {args.apps if 'apps' in scenarios else 1} app(s) ...", flush=True)
        bench.install_apps(args.apps if "apps" in scenarios else 1)
    probe_status(bench.server.port, 1.0)  # warm-up
    print(f"baseline: GET /cloudron/status for {args.baseline:g}s, no streams open ...", flush=True)
    base = probe_status(bench.server.port, args.baseline)
    print(f"  p50 {pct(base, 50):.1f} ms   p99 {pct(base, 99):.1f} ms   ({len(base)} requests)", flush=True)
    results = []
    for name in scenarios:
        if name == "task":
            go_file = os.path.join(bench.tmp, "go")
            task_id = bench.start_task(go_file)
            results.append(run_scenario(bench, "task log streams (one task)", [f"/api/v1/tasks/{task_id}/logstream"
                                                                              "?lines=0"],
                                        lambda go_file=go_file: open(go_file, "w").close()))
        elif name in ("app", "apps"):
            ids = bench.app_ids[:1] if name == "app" else bench.app_ids
            results.append(run_scenario(bench, f"app log streams ({len(ids)} app{'s' if len(ids) > 1 else ''})",
                                        [f"/api/v1/apps/{i}/logstream?lines=0" for i in ids],
                                        lambda ids=ids: bench.write_app_lines(ids)))
        report(args, base, results[-1])
        time.sleep(3)  # the server lets go of the last scenario's clients
    print(f"\nBerth, one uvicorn worker; baseline GET /cloudron/status without streams: p50 {pct(base, 50):.1f} ms"
          f"   p99 {pct(base, 99):.1f} ms")
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=5000)
    p.add_argument("--client-procs", type=int, default=2)
    p.add_argument("--scenarios", default="task,app,apps", help="comma-separated: task, app, apps")
    p.add_argument("--lines", type=int, default=100)
    p.add_argument("--interval", type=float, default=0.1)
    p.add_argument("--apps", type=int, default=10)
    p.add_argument("--tokens", type=int, default=10, help="API tokens the clients are spread over")
    p.add_argument("--baseline", type=float, default=5.0)
    p.add_argument("--grace", type=float, default=6.0, help="seconds late lines are waited for after the last")
    p.add_argument("--profile", help="py-spy each scenario's server worker into <PROFILE>.<scenario>.txt")
    args = p.parse_args()
    # The ticker above is the `test.ticker` task body, in this process and in the server.
    os.environ["BERTH_TEST_TASK_BODIES"] = "bench.streams"
    sys.path.insert(0, BENCH)
    import common
    result = common.run(lambda: Bench(args), measure)
    return 2 if result is None else 0


if __name__ == "__main__":
    sys.exit(main())
