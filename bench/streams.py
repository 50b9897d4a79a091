#!/usr/bin/env python3
"""Many open log streams against one server worker: does the API stay responsive, and how fast
does a log line reach every client? Measured in one run:

    .venv/bin/python bench/streams.py [--clients 1000] [--lines 200] [--interval 0.1]

1. Starts a real Berth (tests/harness.py: gunicorn + uvicorn worker, ONE worker, SQLite in a temp
   dir) and activates it. The per-token rate limit is raised: 1,000 streams share one token.
2. Measures GET /cloudron/status latency with no stream open (baseline, --baseline seconds).
3. Queues a real task (body `test.ticker`: this module's `ticker` through BERTH_TEST_TASK_BODIES,
   run by the server's runner in its own process) that waits for a go signal, then writes one
   log line every --interval seconds.
4. Opens --clients concurrent EventSource connections to /tasks/{id}/logstream (asyncio clients
   in --client-procs processes), waits until all are connected, then gives the go.
5. While the lines flow, measures GET /cloudron/status latency again, and samples the server
   worker's resident memory. Each client timestamps each line on arrival; the line's
   realtimeTimestamp (written by the task process) is the reference, same host, same clock.
6. Prints status p50/p99 without and with the streams and their ratio, line delivery latency
   (p50/p99/max over every client x line, and p99 over lines of the time to reach ALL clients),
   lines lost, and server memory before/with the streams.

Targets (issue 3): status p99 < 50 ms during the run; a line reaches every client within
200 ms (p99). Exit status is 0 whatever the figures; 2 if the benchmark could not run.
"""
import argparse
import asyncio
import json
import os
import re
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


# ---- clients (run as `streams.py --client`) ------------------------------------------------------

TS = re.compile(rb'"realtimeTimestamp":(\d+),"message":"tick (\d+)"')


async def _one_client(host, port, path, token, connected, out):
    reader, writer = await asyncio.open_connection(host, port)
    writer.write((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
                  f"Authorization: Bearer {token}\r\n\r\n").encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError(head.decode(errors="replace"))
    connected()
    tail = b""
    while True:
        data = await reader.read(65536)
        if not data:
            break
        now = time.time()
        buf = tail + data
        end = 0
        for m in TS.finditer(buf):
            out.append((int(m.group(2)), now - int(m.group(1)) / 1e6))
            end = m.end()
        tail = buf[max(end, len(buf) - 200):]
        if b"\r\n0\r\n\r\n" in buf:  # last chunk: the task ended
            break
    writer.close()


async def _clients(args):
    count = [0]
    results = [[] for _ in range(args.n)]

    def connected():
        count[0] += 1
        if count[0] == args.n:
            print("connected", flush=True)
    path = f"/api/v1/tasks/{args.task}/logstream?lines=0"
    errors = 0
    # open in waves so the listen backlog is never the limit
    tasks = []
    for i in range(args.n):
        tasks.append(asyncio.create_task(
            _one_client("127.0.0.1", args.port, path, args.token, connected, results[i])))
        if i % 100 == 99:
            await asyncio.sleep(0.05)
    for outcome in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(outcome, BaseException):
            errors += 1
            sys.stderr.write(f"client failed: {outcome!r}\n")
    print(json.dumps({"errors": errors, "results": results}), flush=True)


def client_main(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--client", action="store_true")
    p.add_argument("--n", type=int)
    p.add_argument("--port", type=int)
    p.add_argument("--task", type=int)
    p.add_argument("--token")
    try:
        import uvloop  # the clients must not be the bottleneck of what they measure
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_clients(p.parse_args(argv)))


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


def worker_rss_mb(server):
    return sum(w.memory_info().rss for w in workers(server)) / 2**20


def cpu_secs(processes):
    return sum(sum(p.cpu_times()[:2]) for p in processes)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--client-procs", type=int, default=2)
    p.add_argument("--lines", type=int, default=200)
    p.add_argument("--interval", type=float, default=0.1)
    p.add_argument("--baseline", type=float, default=8.0)
    args = p.parse_args()

    # The ticker below is the `test.ticker` task body, in this process and in the server.
    os.environ["BERTH_TEST_TASK_BODIES"] = "bench.streams"
    import requests

    import tasks
    from models import database, open_database
    from support.harness import BerthServer

    server = BerthServer(workers=1, env={"BERTH_RATE_LIMIT": "0"})
    try:
        server.start()
    except RuntimeError as e:
        print(f"could not start Berth: {e}")
        return 2
    clients = []
    try:
        r = requests.post(server.api + "/cloudron/activate", timeout=30, json={
            "username": "owner", "password": "Owner-pass-1", "email": "owner@example.com"})
        token = r.json()["token"]
        probe_status(server.port, 1.0)  # warm-up
        rss_idle = worker_rss_mb(server)
        print(f"baseline: GET /cloudron/status for {args.baseline:g}s, no streams open ...", flush=True)
        base = probe_status(server.port, args.baseline)

        go_file = os.path.join(tempfile.mkdtemp(prefix="berth-bench-"), "go")
        open_database("sqlite:///" + os.path.join(server.data_dir, "berth.db"))
        task_id = tasks.start("update", "test.ticker",
                              {"go_file": go_file, "lines": args.lines, "interval": args.interval},
                              timeout=600)
        database.close()

        print(f"opening {args.clients} logstream clients ...", flush=True)
        began = time.monotonic()
        per = [args.clients // args.client_procs + (i < args.clients % args.client_procs)
               for i in range(args.client_procs)]
        for n in per:
            clients.append(subprocess.Popen(
                [sys.executable, __file__, "--client", "--n", str(n), "--port", str(server.port),
                 "--task", str(task_id), "--token", token], stdout=subprocess.PIPE, text=True))
        for c in clients:
            line = c.stdout.readline()
            if line.strip() != "connected":
                raise RuntimeError(f"clients did not connect: {line!r}")
        connect_secs = time.monotonic() - began
        rss_streams = worker_rss_mb(server)
        import psutil
        server_procs = workers(server)
        client_procs = [psutil.Process(c.pid) for c in clients]
        cpu_before = cpu_secs(server_procs), cpu_secs(client_procs), time.monotonic()

        run_secs = args.lines * args.interval
        print(f"all connected in {connect_secs:.1f}s; {args.lines} lines every {args.interval:g}s "
              f"({run_secs:g}s) while measuring status (server worker pid "
              f"{' '.join(str(w.pid) for w in server_procs)}) ...", flush=True)
        rss_peak = [rss_streams]

        def sample():
            while not stop.is_set():
                rss_peak[0] = max(rss_peak[0], worker_rss_mb(server))
                stop.wait(1)
        stop = threading.Event()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        open(go_file, "w").close()
        time.sleep(0.5)  # first lines flowing
        during = probe_status(server.port, run_secs - 1.0)
        stop.set()
        elapsed = time.monotonic() - cpu_before[2]
        cpu_server = (cpu_secs(server_procs) - cpu_before[0]) / elapsed * 100
        cpu_clients = (cpu_secs(client_procs) - cpu_before[1]) / elapsed * 100

        deliveries, lost, errors = [], 0, 0
        per_line = {}
        for c in clients:
            out, _ = c.communicate(timeout=120)
            data = json.loads(out.strip().splitlines()[-1])
            errors += data["errors"]
            for result in data["results"]:
                seen = {i for i, _ in result}
                lost += args.lines - len(seen)
                for i, latency in result:
                    deliveries.append(latency * 1000)
                    per_line[i] = max(per_line.get(i, 0), latency * 1000)
        task = requests.get(f"{server.api}/tasks/{task_id}", timeout=10,
                            headers={"Authorization": f"Bearer {token}"}).json()
    finally:
        for c in clients:
            if c.poll() is None:
                c.kill()
        server.cleanup()

    b50, b99, d50, d99 = pct(base, 50), pct(base, 99), pct(during, 50), pct(during, 99)
    line_p99, all_p99 = pct(deliveries, 99), pct(list(per_line.values()), 99)
    print()
    print(f"Berth, one uvicorn worker, {args.clients} logstream clients, a line every "
          f"{args.interval * 1000:g} ms for {args.lines} lines (task {task_id}: "
          f"{'success' if task.get('success') else task.get('error')})")
    print(f"  GET /cloudron/status without streams: p50 {b50:6.1f} ms   p99 {b99:6.1f} ms   "
          f"({len(base)} requests)")
    print(f"  GET /cloudron/status with streams:    p50 {d50:6.1f} ms   p99 {d99:6.1f} ms   "
          f"({len(during)} requests)   ratio p50 x{d50 / b50:.1f}  p99 x{d99 / b99:.1f}   "
          f"target p99 < {TARGET_STATUS_P99_MS:g} ms: {'met' if d99 < TARGET_STATUS_P99_MS else 'MISSED'}")
    print(f"  line delivery (write -> client), {len(deliveries)} deliveries: p50 {pct(deliveries, 50):.1f} ms"
          f"   p99 {line_p99:.1f} ms   max {max(deliveries, default=float('nan')):.1f} ms")
    print(f"  time for a line to reach ALL clients: p50 {pct(list(per_line.values()), 50):.1f} ms   "
          f"p99 {all_p99:.1f} ms   target p99 < {TARGET_LINE_P99_MS:g} ms: "
          f"{'met' if all_p99 < TARGET_LINE_P99_MS else 'MISSED'}")
    print(f"  lines lost: {lost}   client errors: {errors}   connect time: {connect_secs:.1f} s   "
          f"CPU while streaming: server worker {cpu_server:.0f}%, clients {cpu_clients:.0f}% of one core")
    print(f"  server worker RSS: idle {rss_idle:.0f} MB, {args.clients} streams open {rss_streams:.0f} MB, "
          f"peak {rss_peak[0]:.0f} MB (+{(rss_peak[0] - rss_idle) * 1024 / max(args.clients, 1):.0f} KB "
          f"per stream)")
    return 0


if __name__ == "__main__":
    if "--client" in sys.argv:
        client_main(sys.argv[1:])
    else:
        sys.exit(main())
