#!/usr/bin/env python3
"""API speed and idle footprint of Berth, beside a bare Flask app, measured in one run.

    .venv/bin/python bench/api.py [--idle 60] [--duration 10] [--rounds 3] [--connections 16]
                                  [--only-workers] [--json out.json]

1. Starts a real Berth (tests/harness.py: gunicorn + uvicorn worker, one worker, SQLite in a
   temp dir), activates it through the API and seeds 10,000 users (with group memberships)
   straight into its database: set-up, not the measured path.
2. Serves bench/bare_app.py from the same database under gunicorn, one worker, twice: with
   gunicorn's default sync worker (how Flask is normally served) and with the uvicorn worker
   through a2wsgi (Berth's exact server stack). Checks that both answer GET
   /api/v1/users?per_page=25 with the same JSON as Berth before measuring anything.
3. Serves the same database with BERTH_WORKERS=2 (a second Berth on a copy of the database:
   gunicorn with two uvicorn workers, the per-token rate limit shared between them).
4. Loads each server in turn with the same client (wrk if installed, else a Python keep-alive
   client): 2 s warm-up, then the measured runs, interleaved; prints requests/s, p50 and p99
   latency, the ratio Berth / each bare variant (targets: >= 0.8 of the same-stack one, >= 0.35
   of the sync-worker one; issue 18) and two workers / one (target >= 1.7 on 2 cores), also
   round by round, with how the client's connections were split between the two workers in
   each round. --only-workers measures just the one- and two-worker Berth.
5. Leaves Berth idle (--idle seconds, default 60) and reports the resident memory and CPU of
   all its processes (every process in its process group and below its master: gunicorn master,
   worker, and the worker's task fork server when one runs): targets < 150 MB and < 1% of one
   core; then each process's RSS, PSS and USS. The runner starts its task fork server when a task
   first needs it, so after the idle figure four tasks are run (POST /cloudron/sync_dns: the first
   starts the server, the others are forked warm) and the footprint is shown again as it stays
   for the 10 minutes the server waits for more tasks.

Exit status is 0 whatever the figures (a benchmark reports, it does not fail CI); 2 means the
benchmark itself could not run (a server did not start, or the answers were not identical).
"""
import argparse
import datetime
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

import requests  # noqa: E402

from cli.server import WORKER_CLASS  # noqa: E402  (the worker class Berth is served with)
from support.harness import VENV_BIN, BerthServer, free_port  # noqa: E402

try:
    import psutil
except ImportError:  # the test extras bring it; /proc is read without it
    psutil = None

USERS = 10_000
GROUPS = 20
PATH = "/api/v1/users?per_page=25"
RATE_LIMIT = "100000000"  # the limiter stays on (its cost is measured) but never throttles
GONE = (OSError, ValueError) + ((psutil.NoSuchProcess,) if psutil else ())
TARGET_RSS_MB, TARGET_CPU_PCT = 150, 1.0
TARGET_SAME_STACK, TARGET_SYNC, TARGET_TWO_WORKERS = 0.8, 0.35, 1.7


class SetupError(Exception):
    """The benchmark could not run; the message says why."""


# ---- set-up -------------------------------------------------------------------------------------

def activate(server):
    r = requests.post(server.api + "/cloudron/activate", timeout=30,
                      json={"username": "owner", "password": "Owner-pass-1", "email": "owner@example.com"})
    if r.status_code != 201:
        raise SetupError(f"activation answered {r.status_code}: {r.text}")
    return r.json()["token"]


def seed(database_url, total_users):
    """Insert users up to `total_users` (the owner is one), groups and memberships directly."""
    import models
    from accounts import passwords
    db = models.open_database(database_url)
    password_hash = passwords.hash_password("Bench-pass-1")  # one argon2 hash shared by all
    start = datetime.datetime(2024, 1, 1, 0, 0, 0, 123456)
    group_ids = [f"gid-{uuid.uuid4()}" for _ in range(GROUPS)]
    users, members = [], []
    for i in range(total_users - 1):
        uid = f"uid-{uuid.uuid4()}"
        # Names that do not sort in insertion order, so ORDER BY username does real work.
        name = f"{hashlib.sha1(str(i).encode()).hexdigest()[:6]}-user{i}"
        users.append({"id": uid, "username": name, "email": f"{name}@example.com", "sort_key": name,
                      "display_name": f"User {i}", "password_hash": password_hash,
                      "role": ("user", "user", "user", "usermanager", "admin")[i % 5],
                      "creation_time": start + datetime.timedelta(seconds=i, microseconds=i),
                      "last_login_time": (start + datetime.timedelta(days=1, seconds=i)) if i % 2 else None})
        for k in range(i % 3):  # 0, 1 or 2 groups each
            members.append({"group": group_ids[(i + 7 * k) % GROUPS], "user": uid})
    with db.atomic():
        groups = [{"id": gid, "name": f"group{n}"} for n, gid in enumerate(group_ids)]
        models.Group.insert_many(groups).execute()
        for rows, model in ((users, models.User), (members, models.GroupMember)):
            for k in range(0, len(rows), 500):
                model.insert_many(rows[k:k + 500]).execute()
    count = models.User.select().count()
    db.close()
    if count != total_users:
        raise SetupError(f"seeded {count} users, expected {total_users}")
    return count


class BareServer:
    """bench/bare_app.py under gunicorn, one worker, with the flags Berth's `cli.py serve` uses."""

    def __init__(self, worker, database_path, log_dir):
        self.worker = worker  # "sync" or WORKER_CLASS
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_path = database_path
        self.log_path = os.path.join(log_dir, f"bare-{worker.split('.')[-1]}.log")
        self.proc = None

    def start(self, token, timeout=30):
        target = "bare_app:app" if self.worker == "sync" else "bare_app:asgi_app"
        argv = [os.path.join(VENV_BIN, "gunicorn"), "-k", self.worker, "-w", "1",
                "-b", f"127.0.0.1:{self.port}", "--graceful-timeout", "10", "--no-control-socket",
                "--access-logfile", "-", "--chdir", BENCH, target]
        with open(self.log_path, "ab") as log:
            # PYTHONPATH: Berth's worker class (web/worker.py) imports from the repository; with
            # one worker it serves the socket exactly as uvicorn's own worker does.
            env = dict(os.environ, BARE_DATABASE=self.database_path, PYTHONPATH=ROOT)
            self.proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SetupError(f"bare app ({self.worker}) exited with {self.proc.returncode}")
            try:
                requests.get(self.url + PATH, headers=auth(token), timeout=1)
                return self
            except requests.RequestException:
                time.sleep(0.1)
        raise SetupError(f"bare app ({self.worker}) did not answer within {timeout}s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def start_copy(berth, data_dir, database_url, workers):
    """A second Berth with `workers` workers on a copy of the seeded database (same token)."""
    import sqlite3
    os.makedirs(data_dir)
    source = sqlite3.connect(database_url[len("sqlite:///"):])
    target = sqlite3.connect(os.path.join(data_dir, "berth.db"))
    source.backup(target)
    target.close()
    source.close()
    server = BerthServer(data_dir=data_dir, workers=workers,
                         env={"BERTH_RATE_LIMIT": RATE_LIMIT, "BERTH_DATABASE_URL": ""})
    print(f"bench: starting Berth with BERTH_WORKERS={workers} ...", flush=True)
    return server.start(timeout=120)  # two workers importing at once on a busy machine


def auth(token):
    return {"Authorization": f"Bearer {token}"}


def check_same_answer(berth_url, bare_url, token):
    """Both must answer the benchmarked request with equal JSON, or the comparison is void."""
    answers = []
    for url in (berth_url, bare_url):
        r = requests.get(url + PATH, headers=auth(token), timeout=10)
        if r.status_code != 200:
            raise SetupError(f"{url}{PATH} answered {r.status_code}: {r.text[:300]}")
        answers.append(r.json())
    berth, bare = answers
    if berth != bare:
        for a, b in zip(berth.get("users", []), bare.get("users", []), strict=False):
            if a != b:
                raise SetupError(f"answers differ; first different user:\n  berth {a}\n  bare  {b}")
        raise SetupError(f"answers differ: {json.dumps(berth)[:300]} vs {json.dumps(bare)[:300]}")
    users = berth["users"]
    if len(users) != 25 or not any(u["groupIds"] for u in users):
        raise SetupError(f"expected 25 users with some groupIds, got {len(users)}")
    return len(json.dumps(berth, separators=(",", ":")))


# ---- load ---------------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(text):
    value, unit = re.fullmatch(r"([\d.]+)([a-z]+)", text).groups()
    return float(value) * _UNITS[unit]


def run_wrk(url, token, seconds, connections, threads):
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
                          "-H", f"Authorization: Bearer {token}", url + PATH],
                         capture_output=True, text=True, check=True).stdout
    pct = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.M))
    if "50" not in pct or "99" not in pct:
        raise SetupError(f"unexpected wrk output for {url}:\n{out}")
    requests_done = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50_ms": _ms(pct["50"]), "p99_ms": _ms(pct["99"]), "requests": requests_done,
            "errors": (int(bad.group(1)) if bad else 0) + (sum(map(int, sock.groups())) if sock else 0)}


def run_python(url, token, seconds, connections, _threads):
    """Fallback client: one thread per connection, HTTP/1.1 keep-alive where the server allows."""
    host, port = url.split("//")[1].split(":")
    deadline = time.perf_counter() + seconds
    latencies, errors, lock = [], [0], threading.Lock()

    def client():
        mine, bad, conn = [], 0, None
        while time.perf_counter() < deadline:
            try:
                conn = conn or http.client.HTTPConnection(host, int(port), timeout=10)
                t0 = time.perf_counter()
                conn.request("GET", PATH, headers=auth(token))
                resp = conn.getresponse()
                resp.read()
                mine.append((time.perf_counter() - t0) * 1000)
                bad += resp.status != 200
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                bad += 1
                conn = None
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    started = time.perf_counter()
    workers = [threading.Thread(target=client) for _ in range(connections)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    if not latencies:
        return {"rps": 0.0, "p50_ms": float("nan"), "p99_ms": float("nan"), "requests": 0,
                "errors": errors[0]}
    at = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]  # noqa: E731
    return {"rps": len(latencies) / elapsed, "p50_ms": at(0.50), "p99_ms": at(0.99),
            "requests": len(latencies), "errors": errors[0]}


def median_run(runs):
    """The run with the median requests/s; every round's figure is kept alongside, and the
    median CPU time the server spent per request (all its processes)."""
    ordered = sorted(runs, key=lambda r: r["rps"])
    cpu = sorted(r.get("cpu_ms", float("nan")) for r in runs)
    return dict(ordered[len(ordered) // 2], rounds=[round(r["rps"], 1) for r in runs],
                splits=[r.get("split") for r in runs], cpu_ms=cpu[len(cpu) // 2])


def connection_split(master_pid, port):
    """Established connections to `port` held by each worker of a gunicorn master, most first
    (each worker's sockets, read from /proc through psutil); None without psutil."""
    if psutil is None:
        return None
    try:
        return sorted((sum(1 for c in w.net_connections("tcp")
                           if c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED)
                       for w in psutil.Process(master_pid).children()), reverse=True)
    except GONE:
        return None


def split_midway(master_pid, url, seconds):
    """Reads connection_split halfway through a run of `seconds` (in a timer thread); join() the
    timer, then the box holds the split."""
    box = []
    port = int(url.rsplit(":", 1)[1])
    timer = threading.Timer(seconds / 2, lambda: box.append(connection_split(master_pid, port)))
    timer.start()
    return timer, box


# ---- footprint ----------------------------------------------------------------------------------

def group_pids(pgid):
    pids = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid:
                    pids.append(int(entry))
            except OSError:
                pass
    if psutil:
        # Also the tree below the leader: the task fork server of each worker leads a session of
        # its own (and on macOS, without /proc, this is the whole walk).
        try:
            leader = psutil.Process(pgid)
            pids += [leader.pid] + [c.pid for c in leader.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    return sorted(set(pids))


def footprint(pgid):
    """(cpu seconds, rss bytes, pss bytes or None, process count) summed over the group."""
    cpu, rss, pss, n = 0.0, 0, 0, 0
    for pid in group_pids(pgid):
        try:
            if psutil:
                p = psutil.Process(pid)
                times = p.cpu_times()
                cpu += times.user + times.system
                try:
                    info = p.memory_full_info()
                    rss += info.rss
                    pss = None if pss is None or not hasattr(info, "pss") else pss + info.pss
                except psutil.AccessDenied:
                    rss += p.memory_info().rss
                    pss = None
            else:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                tick = os.sysconf("SC_CLK_TCK")
                cpu += (int(fields[11]) + int(fields[12])) / tick
                rss += int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
                pss = None
            n += 1
        except GONE:  # exited between listing and reading
            pass
    return cpu, rss, pss, n


def _role(proc, pids):
    """What a process of Berth's is, from its command line (for the per-process breakdown)."""
    cmd = " ".join(proc.cmdline())
    if "tasks.fork_server" in cmd:
        return "task fork server"
    if "tasks.child" in cmd:
        return "task process (spawned)"
    if "gunicorn" in cmd:
        if proc.ppid() not in pids:
            return "gunicorn master"
        parent = " ".join(psutil.Process(proc.ppid()).cmdline())
        return "task process (forked)" if "tasks.fork_server" in parent else "gunicorn worker"
    return proc.name()


def process_rows(pgid):
    """[{pid, role, rss_mb, pss_mb, uss_mb, threads}] of every process footprint() counts, or []
    without psutil: where the memory goes."""
    if not psutil:
        return []
    pids = set(group_pids(pgid))
    rows = []
    for pid in sorted(pids):
        try:
            p = psutil.Process(pid)
            info = p.memory_full_info()
            rows.append({"pid": pid, "role": _role(p, pids), "rss_mb": info.rss / 2**20,
                         "pss_mb": getattr(info, "pss", float("nan")) / 2**20,
                         "uss_mb": info.uss / 2**20, "threads": p.num_threads()})
        except (psutil.AccessDenied, *GONE):
            pass
    return rows


def idle_window(pgid, seconds):
    cpu0, _, _, _ = footprint(pgid)
    t0 = time.monotonic()
    peak = 0
    while time.monotonic() - t0 < seconds:
        time.sleep(min(5.0, max(0.0, seconds - (time.monotonic() - t0))))
        peak = max(peak, footprint(pgid)[1])
    cpu1, rss, pss, n = footprint(pgid)
    wall = max(time.monotonic() - t0, 1e-6)
    return {"cpu_pct": 100.0 * (cpu1 - cpu0) / wall, "rss_mb": rss / 2**20,
            "peak_rss_mb": max(peak, rss) / 2**20,
            "pss_mb": None if pss is None else pss / 2**20, "processes": n, "seconds": wall,
            "detail": process_rows(pgid)}


def _run_task(berth, token):
    """Queue a task through the API and wait for it to end: seconds from the POST to done."""
    t0 = time.perf_counter()
    # Nothing to write here (no apps, no domains): the task's cost is starting it and ending it.
    r = requests.post(berth.api + "/cloudron/sync_dns", json={}, headers=auth(token), timeout=30)
    if r.status_code != 201:
        raise SetupError(f"POST /cloudron/sync_dns answered {r.status_code}: {r.text[:300]}")
    task_id = r.json()["taskId"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        task = requests.get(f"{berth.api}/tasks/{task_id}", headers=auth(token), timeout=30).json()
        if not task["active"] and not task["pending"]:
            if not task.get("success"):
                raise SetupError(f"the sync_dns task failed: {task.get('error')}")
            return time.perf_counter() - t0
        time.sleep(0.005)
    raise SetupError(f"task {task_id} did not end within 120 s")


def after_tasks(berth, token, settle_secs=60.0):
    """Idle memory within IDLE_EXIT_SECS (10 min) of a task. The runner starts its task fork
    server on demand (tasks.runner), so the idle figure above has none; a Berth that ran a task
    in the last 10 minutes also holds it. The first task starts the server (it pays the spawn),
    the server then preloads every body module while idle (waited for: its memory steady), and
    three more are forked warm. Returns the first's time, the median of the others and the
    footprint after them."""
    cold = _run_task(berth, token)
    deadline, last, steady = time.monotonic() + settle_secs, None, 0
    while time.monotonic() < deadline and steady < 3:
        time.sleep(1.0)
        server = [r["rss_mb"] for r in process_rows(berth.proc.pid) if r["role"] == "task fork server"]
        steady = steady + 1 if server and last is not None and abs(server[0] - last) < 0.25 else 0
        last = server[0] if server else None
    warm = sorted(_run_task(berth, token) for _ in range(3))[1]   # the median of three
    time.sleep(1.0)
    _, rss, pss, n = footprint(berth.proc.pid)
    return {"cold_task_s": cold, "warm_task_s": warm, "rss_mb": rss / 2**20, "processes": n,
            "pss_mb": None if pss is None else pss / 2**20, "detail": process_rows(berth.proc.pid)}


# ---- report -------------------------------------------------------------------------------------

def print_processes(rows):
    for r in rows:
        print(f"    {r['role']:<24} pid {r['pid']:<8} RSS {r['rss_mb']:6.1f}  PSS {r['pss_mb']:6.1f}  "
              f"USS {r['uss_mb']:6.1f} MB  {r['threads']} threads")

def verdict(ok):
    return "PASS" if ok else "MISS"


def report_workers(res):
    """Two workers / one: the ratio of the median runs, each round's own ratio (in a round the
    servers run back to back, so both see the same machine) and how the client's keep-alive
    connections were split between the two workers in each round (read halfway through the run;
    one worker holding them all is what web/worker.py prevents)."""
    two = res.get("two_workers")
    if two is None:
        return
    one_rounds = res["load"][res["berth_label"]]["rounds"]
    run2 = res["load"][res["two_label"]]
    by_round = [b / max(a, 1e-9) for a, b in zip(one_rounds, run2["rounds"], strict=True)]
    splits = " ".join("/".join(map(str, sp)) if sp else "?" for sp in run2["splits"])
    print(f"RATIO berth BERTH_WORKERS=2 / one worker{'':<24}{two:6.2f}   target >= {TARGET_TWO_WORKERS}   "
          f"{verdict(two >= TARGET_TWO_WORKERS)}   ({os.cpu_count()} cores)")
    print(f"  by round: {' '.join(f'{x:.2f}' for x in by_round)} (median "
          f"{sorted(by_round)[len(by_round) // 2]:.2f}); connections per worker by round: {splits}")


def report(res, args):
    w = "-" * 78
    print()
    print(w)
    print(f"GET {PATH}  ({res['users']} users, {res['body_bytes']} B body, one gunicorn worker each,")
    print(f"client: {res['client']}, {args.connections} connections, {args.warmup}s warm-up, then median of "
          f"{args.rounds} interleaved runs of {args.duration}s)")
    print(w)
    print(f"{'server':<48}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'errors':>7}{'cpu ms/req':>11}   req/s by round")
    for name, r in res["load"].items():
        rounds = " ".join(f"{x:.0f}" for x in r["rounds"])
        print(f"{name:<48}{r['rps']:>8.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['errors']:>7}"
              f"{r['cpu_ms']:>11.3f}   {rounds}")
    if any(r["errors"] for r in res["load"].values()):
        print("WARNING: some requests failed (non-2xx or socket errors); their req/s are not comparable")
    print(w)
    berth_cpu = res["load"][res["berth_label"]]["cpu_ms"]
    for name, target in zip(res["bare_labels"], (TARGET_SYNC, TARGET_SAME_STACK)[:len(res["bare_labels"])],
                            strict=True):
        ratio = res["ratios"][name]
        by_cpu = res["load"][name]["cpu_ms"] / max(berth_cpu, 1e-9)
        print(f"RATIO berth / {name:<48}{ratio:6.2f}   target >= {target}   {verdict(ratio >= target)}"
              f"   (by CPU per request: {by_cpu:.2f})")
    report_workers(res)
    print("(cpu ms/req: CPU time of the server's processes per request answered. On a busy machine,\n"
          " where the servers do not get a whole core, its ratio is the steadier comparison.)")
    print(w)
    if res.get("idle") is None:  # --only-workers
        return
    idle = res["idle"]
    pss = "" if idle["pss_mb"] is None else f", PSS {idle['pss_mb']:.1f} MB"
    print(f"idle Berth, {idle['seconds']:.0f}s after the load run, {idle['processes']} processes "
          f"(gunicorn master + worker{' + others' if idle['processes'] > 2 else ''}):")
    print(f"  resident memory  {idle['rss_mb']:6.1f} MB   target < {TARGET_RSS_MB} MB   "
          f"{verdict(idle['rss_mb'] < TARGET_RSS_MB)}   (sum of RSS{pss}; peak {idle['peak_rss_mb']:.1f} MB)")
    print(f"  CPU              {idle['cpu_pct']:6.2f} %    target < {TARGET_CPU_PCT} % of a core   "
          f"{verdict(idle['cpu_pct'] < TARGET_CPU_PCT)}")
    print(f"  (right after start-up, before any load: RSS {res['startup_rss_mb']:.1f} MB)")
    print_processes(idle.get("detail") or [])
    warm = res.get("after_tasks")
    if warm:
        pss = "" if warm["pss_mb"] is None else f", PSS {warm['pss_mb']:.1f} MB"
        print(f"within 10 minutes of a task (the first task starts the task fork server; it ends after "
              f"10 idle minutes), {warm['processes']} processes:")
        print(f"  resident memory  {warm['rss_mb']:6.1f} MB   (sum of RSS{pss})")
        print(f"  POST to task done: first task {warm['cold_task_s']:.3f} s (starts the server), "
              f"the next ones {warm['warm_task_s']:.3f} s (forked warm, median of 3)")
        print_processes(warm["detail"])
    print(w)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=float, default=60, help="idle window in seconds (default 60)")
    parser.add_argument("--duration", type=int, default=10, help="measured seconds per server (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds per server (default 2)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="measured runs per server, interleaved; the median is shown (default 3)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections (default 16)")
    parser.add_argument("--threads", type=int, default=1,
                        help="wrk threads (default 1: leaves the other core to the server on a 2-core box)")
    parser.add_argument("--python-client", action="store_true",
                        help="use the Python client even if wrk exists")
    parser.add_argument("--no-two-workers", action="store_true", help="skip the BERTH_WORKERS=2 server")
    parser.add_argument("--only-workers", action="store_true",
                        help="only Berth with one worker and with BERTH_WORKERS=2 (no bare apps, no idle footprint)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, database)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)

    use_wrk = shutil.which("wrk") and not args.python_client
    load = run_wrk if use_wrk else run_python
    client = f"wrk -t{args.threads}" if use_wrk else "Python threads (client-bound: bare figures are low)"
    if not use_wrk and not args.python_client:
        print("bench: wrk not found (Debian package wrk), using the Python client: it needs a core "
              "of its own and limits the bare apps' figures")

    work = tempfile.mkdtemp(prefix="berth-bench-")
    os.makedirs(os.path.join(work, "berth"))
    # SQLite in the temp dir whatever the caller's environment says (the bare app reads that file).
    berth = BerthServer(data_dir=os.path.join(work, "berth"), workers=1,
                        env={"BERTH_RATE_LIMIT": RATE_LIMIT, "BERTH_DATABASE_URL": ""})
    bares = []
    berth2 = None
    try:
        print("bench: starting Berth ...", flush=True)
        berth.start()
        token = activate(berth)
        database_url = "sqlite:///" + os.path.join(berth.data_dir, "berth.db")  # config.py's default
        print(f"bench: seeding {USERS} users ...", flush=True)
        users = seed(database_url, USERS)
        time.sleep(1)
        startup_rss = footprint(berth.proc.pid)[1] / 2**20

        worker_name = WORKER_CLASS.split(".")[-1]
        berth_label = f"berth (gunicorn -k {worker_name})"
        bare_specs = [("sync", "bare Flask (gunicorn sync worker, WSGI)"),
                      (WORKER_CLASS, f"bare Flask (gunicorn -k {worker_name}, a2wsgi)")]
        targets = {berth_label: berth.url}
        groups = {berth_label: berth.proc.pid}
        body_bytes = None
        if args.only_workers:
            bare_specs = []
        for worker, label in bare_specs:
            bare = BareServer(worker, database_url[len("sqlite:///"):], work)
            bares.append(bare)
            bare.start(token)
            body_bytes = check_same_answer(berth.url, bare.url, token)
            targets[label] = bare.url
            groups[label] = bare.proc.pid
        if bare_specs:
            print(f"bench: same JSON from Berth and both bare apps ({body_bytes} B compact)", flush=True)
        two_label = "berth, BERTH_WORKERS=2 (2 uvicorn workers)"
        if not args.no_two_workers or args.only_workers:
            berth2 = start_copy(berth, os.path.join(work, "berth2"), database_url, workers=2)
            body_bytes = check_same_answer(berth.url, berth2.url, token)
            targets[two_label] = berth2.url
            groups[two_label] = berth2.proc.pid
        for url in targets.values():
            load(url, token, args.warmup, args.connections, args.threads)  # warm-up, discarded
        # Rounds alternate between the servers so that drift on a shared machine hits all alike.
        runs = {label: [] for label in targets}
        for n in range(args.rounds):
            print(f"bench: round {n + 1}/{args.rounds} ({len(targets)} x {args.duration}s) ...", flush=True)
            for label, url in targets.items():
                cpu0 = footprint(groups[label])[0]
                timer, split = split_midway(groups[label], url, args.duration)  # wrk's connections per worker
                run = load(url, token, args.duration, args.connections, args.threads)
                run["cpu_ms"] = 1000.0 * (footprint(groups[label])[0] - cpu0) / max(run["requests"], 1)
                timer.join()
                run["split"] = split[0] if split else None
                runs[label].append(run)
        results = {label: median_run(r) for label, r in runs.items()}
        for bare in bares:
            bare.stop()
        if berth2:
            berth2.stop()

        idle = warm_footprint = None
        if not args.only_workers:
            print(f"bench: Berth idle for {args.idle:.0f}s ...", flush=True)
            idle = idle_window(berth.proc.pid, args.idle)
            print("bench: four tasks, then the footprint with the task fork server warm ...", flush=True)
            warm_footprint = after_tasks(berth, token)
        bare_labels = [label for _, label in bare_specs]
        berth_rps = results[berth_label]["rps"]
        res = {"users": users, "body_bytes": body_bytes, "client": client, "load": results,
               "berth_label": berth_label, "bare_labels": bare_labels, "two_label": two_label,
               "ratios": {label: berth_rps / max(results[label]["rps"], 1e-9) for label in bare_labels},
               "two_workers": (results[two_label]["rps"] / max(berth_rps, 1e-9)
                               if two_label in results else None),
               "idle": idle, "after_tasks": warm_footprint, "startup_rss_mb": startup_rss}
        report(res, args)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(res, f, indent=2)
        return 0
    except (SetupError, RuntimeError, subprocess.CalledProcessError) as e:
        print(f"bench: could not run: {e}", file=sys.stderr)
        return 2
    finally:
        for bare in bares:
            bare.stop()
        if berth2:
            berth2.stop()
        berth.stop()
        if args.keep:
            print(f"bench: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
