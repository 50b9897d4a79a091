#!/usr/bin/env python3
"""Soak test: many concurrent API clients mixing reads and writes, on SQLite and on PostgreSQL.

    .venv/bin/python bench/load.py [--duration 300] [--clients 50] [--apps 5] [--backends sqlite,postgresql]

For each backend a real Berth is started (tests/support/harness.py: gunicorn + uvicorn workers,
`BerthServer(workers=2)`, 127.0.0.1 only; PostgreSQL in a private throw-away cluster), activated,
and given, per client, an admin account with its own token, a user it edits, three groups and
(for the first --apps clients, when Docker is there) an app of the test image. Then:
1. baseline: the same mix with ONE client for --baseline seconds;
2. load: --clients clients at once for --duration seconds.
Each client loops (bounded by time and by --max-ops) over a weighted mix: list/get users, update
its user's displayName with a counter, set its user's groups and its group's members, create a
token, use it, revoke it and check it is refused, list groups, apps, backups and tasks, poll a task
and (app owners) set the app's label and its env, which queues a configure task polled to its end.
Every write is read back at once, and again by a final sweep after each phase.

Checks (any failure exits 1): every answer has the expected status (no 5xx, no timeout), zero
lost updates (a read-back differs from what was written), zero "database is locked" in the
server's logs. Prints p50/p99 per operation kind under load beside the 1-client baseline, the
throughput, and the machine's load average. Exit 2 when the soak could not run at all.
"""
import argparse
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import defaultdict

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

import requests  # noqa: E402

from support import images  # noqa: E402
from support.harness import Api, BerthServer, PostgresCluster, remove_app_containers, stop_proxy  # noqa: E402

DOMAIN = "example.test"
PASSWORD = "Soak-pass-1"
POOL = 6                  # shared users that only ever join groups (so members sets never race)
TASK_TIMEOUT = 180        # seconds an app configure task may take under load
LOG_MARKERS = ("database is locked", "Traceback (most recent call last)")


class SetupError(Exception):
    """The soak could not run; the message says why."""


class Unexpected(Exception):
    """An answer with a status other than the expected one."""


def pct(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def ratio(load, base, q):
    return pct(load, q) / pct(base, q) if load and base else float("nan")


class Client:
    """One API client: an admin with its own token and the objects only it writes."""

    def __init__(self, idx, api, me, user_id, member_group, own_groups, pool, app_id, shared):
        self.idx, self.api, self.me, self.user_id = idx, api, me, user_id
        self.member_group, self.own_groups, self.pool, self.app_id = member_group, own_groups, pool, app_id
        self.shared = shared      # Soak: error list, lock, recent task ids
        self.rng = random.Random(idx)
        self.counter = 0
        self.expect = {}          # what the last writes should read back as
        self.lat = defaultdict(list)
        ops = [(self.users_list, 3), (self.user_get, 2), (self.user_update, 3), (self.user_groups, 1),
               (self.group_members, 2), (self.groups_list, 1), (self.token_cycle, 1), (self.backups_list, 1),
               (self.tasks_list, 1), (self.apps_list, 1)]
        if app_id:
            ops += [(self.app_label, 2), (self.app_env, 1)]
        self.ops, self.weights = zip(*ops, strict=True)

    # -- plumbing -------------------------------------------------------------------------------

    def call(self, kind, method, path, expect, api=None, **kw):
        t0 = time.perf_counter()
        try:
            r = (api or self.api).request(method, path, **kw)
        except requests.RequestException as e:
            raise Unexpected(f"{kind}: {method} {path}: {type(e).__name__}: {e}") from None
        self.lat[kind].append((time.perf_counter() - t0) * 1000)
        if r.status_code != expect:
            raise Unexpected(f"{kind}: {method} {path} answered {r.status_code}, expected {expect}: {r.text[:200]}")
        return r.json() if r.content and r.headers.get("content-type", "").startswith("application/json") else None

    def lost(self, what, wrote, read):
        self.shared.record("lost", f"client {self.idx}: {what}: wrote {wrote!r}, read back {read!r}")

    def run(self, deadline, max_ops, think):
        for _ in range(max_ops):
            if time.monotonic() >= deadline:
                break
            op = self.rng.choices(self.ops, self.weights)[0]
            try:
                op()
            except Unexpected as e:
                self.shared.record("error", str(e))
            if think:
                time.sleep(self.rng.uniform(0, 2 * think))

    # -- the mix --------------------------------------------------------------------------------

    def users_list(self):
        self.call("users.list", "GET", "/users", 200, params={"per_page": 25, "page": self.rng.randint(1, 3)})

    def user_get(self):
        self.call("user.get", "GET", f"/users/{self.rng.choice(self.pool)}", 200)

    def user_update(self):
        self.counter += 1
        name = f"client {self.idx} write {self.counter}"
        self.call("user.update", "POST", f"/users/{self.user_id}", 204, json={"displayName": name})
        self.expect["displayName"] = name
        self.check_user("user.readback")

    def user_groups(self):
        groups = sorted(g for g in self.own_groups if self.rng.random() < 0.5)
        self.call("user.groups", "PUT", f"/users/{self.user_id}/groups", 204, json={"groupIds": groups})
        self.expect["groupIds"] = groups
        self.check_user("user.readback")

    def check_user(self, kind):
        user = self.call(kind, "GET", f"/users/{self.user_id}", 200)
        for key, wrote in self.expect.items():
            if key in ("displayName", "groupIds"):
                read = sorted(user[key]) if key == "groupIds" else user[key]
                if read != wrote:
                    self.lost(f"user {key}", wrote, read)

    def group_members(self):
        members = sorted(u for u in self.pool if self.rng.random() < 0.5)
        self.call("group.members", "PUT", f"/groups/{self.member_group}/members", 200, json={"userIds": members})
        self.expect["members"] = members
        self.check_group("group.readback")

    def check_group(self, kind):
        read = sorted(self.call(kind, "GET", f"/groups/{self.member_group}", 200)["userIds"])
        if read != self.expect["members"]:
            self.lost("group members", self.expect["members"], read)

    def groups_list(self):
        self.call("groups.list", "GET", "/groups", 200)

    def token_cycle(self):
        token = self.call("token.create", "POST", "/tokens", 201, json={"name": f"soak {self.idx}"})
        fresh = self.api.with_token(token["accessToken"])
        me = self.call("token.use", "GET", "/profile", 200, api=fresh)
        if me["id"] != self.me:
            self.lost("token owner", self.me, me["id"])
        self.call("token.delete", "DELETE", f"/tokens/{token['id']}", 204)
        # A new connection for the last call: the fresh session's one sat idle during the delete,
        # which under load can outlast gunicorn's 2 s keep-alive, and a request sent just as the
        # server closes an idle connection is reset (a client-side race, not an answer of Berth).
        fresh.session.close()
        self.call("token.refused", "GET", "/profile", 401, api=fresh)  # revoked at once, on every worker

    def backups_list(self):
        self.call("backups.list", "GET", "/backups", 200)

    def tasks_list(self):
        listed = self.call("tasks.list", "GET", "/tasks", 200)["tasks"]
        known = self.shared.task_ids or [t["id"] for t in listed]
        if known:
            self.call("task.get", "GET", f"/tasks/{self.rng.choice(known)}", 200)

    def apps_list(self):
        self.call("apps.list", "GET", "/apps", 200)

    def app_label(self):
        self.counter += 1
        label = f"c{self.idx}-{self.counter}"
        self.call("app.label", "POST", f"/apps/{self.app_id}/configure/label", 200, json={"label": label})
        self.expect["label"] = label
        self.check_app("app.readback")

    def app_env(self):
        self.counter += 1
        env = {"SOAK_WRITE": str(self.counter)}
        task_id = self.call("app.env", "POST", f"/apps/{self.app_id}/configure/env", 202, json={"env": env})["taskId"]
        self.shared.add_task(task_id)
        self.expect["env"] = env
        self.wait_task(task_id)
        self.check_app("app.readback")

    def wait_task(self, task_id):
        deadline = time.monotonic() + TASK_TIMEOUT
        for _ in range(TASK_TIMEOUT * 10):
            task = self.call("task.poll", "GET", f"/tasks/{task_id}", 200)
            if not task["active"] and not task["pending"]:
                if not task["success"]:
                    raise Unexpected(f"task {task_id} failed: {task['error']}")
                return
            if time.monotonic() > deadline:
                break
            time.sleep(0.25)
        raise Unexpected(f"task {task_id} still running after {TASK_TIMEOUT}s")

    def check_app(self, kind):
        app = self.call(kind, "GET", f"/apps/{self.app_id}", 200)
        if "label" in self.expect and app["label"] != self.expect["label"]:
            self.lost("app label", self.expect["label"], app["label"])
        if "env" in self.expect and app["env"] != self.expect["env"]:
            self.lost("app env", self.expect["env"], app["env"])

    def sweep(self):
        """After a phase: everything this client wrote must still read back."""
        try:
            self.check_user("sweep")
            if "members" in self.expect:
                self.check_group("sweep")
            if self.app_id:
                self.check_app("sweep")
        except Unexpected as e:
            self.shared.record("error", f"sweep: {e}")


class Soak:
    """One backend: the server, its set-up, both phases and the figures."""

    def __init__(self, args, name, database_url, docker_client, image, work):
        self.args, self.name = args, name
        self.docker, self.image = docker_client, image
        data_dir = os.path.join(work, name)
        os.makedirs(data_dir)
        # 50 clients are far over the per-token limit's purpose: it stays configured but never throttles.
        self.server = BerthServer(database_url=database_url, data_dir=data_dir, workers=2,
                                  env={"BERTH_RATE_LIMIT": "0", "BERTH_DATABASE_URL": database_url or ""})
        self.lock = threading.Lock()
        self.problems = defaultdict(list)
        self.task_ids = []
        self.app_ids = []

    def record(self, kind, message):
        with self.lock:
            self.problems[kind].append(message)

    def add_task(self, task_id):
        with self.lock:
            self.task_ids = (self.task_ids + [task_id])[-50:]

    def expect(self, r, status, what):
        if r.status_code != status:
            raise SetupError(f"{what} answered {r.status_code}: {r.text[:300]}")
        return r.json() if r.content else None

    def setup(self):
        self.server.start()
        anon = Api(self.server.api)
        owner = anon.with_token(self.expect(anon.post("/cloudron/activate", json={
            "username": "owner", "password": "Owner-pass-1", "email": "owner@example.com"}), 201, "activate")["token"])

        def user(name, role):
            return self.expect(owner.post("/users", json={"username": name, "email": f"{name}@{DOMAIN}",
                                                          "password": PASSWORD, "role": role}), 201, name)["id"]

        def group(name):
            return self.expect(owner.post("/groups", json={"name": name}), 201, name)["id"]

        pool = [user(f"soak-pool{k}", "user") for k in range(POOL)]
        apps = self.install_apps(owner) if self.image else []
        self.clients = []
        for i in range(self.args.clients):
            me = user(f"soak-admin{i}", "admin")
            login = self.expect(anon.post("/cloudron/login", json={"username": f"soak-admin{i}", "password": PASSWORD}),
                                200, "login")
            self.clients.append(Client(i, anon.with_token(login["token"]), me, user(f"soak-user{i}", "user"),
                                       group(f"soak-m{i}"), [group(f"soak-x{i}"), group(f"soak-y{i}")], pool,
                                       apps[i] if i < len(apps) else None, self))

    def install_apps(self, owner):
        self.expect(owner.post("/domains", json={"domain": DOMAIN, "provider": "noop", "config": {}}), 201, "domain")
        manifest = {"manifestVersion": 2, "id": "io.berth.soak.httpd", "version": "1.0.0", "title": "soak",
                    "dockerImage": self.image, "httpPort": images.PORT, "healthCheckPath": images.HEALTH_PATH}
        waits = []
        for n in range(self.args.apps):
            answer = self.expect(owner.post("/apps/install", json={
                "manifest": manifest, "location": f"soak{n}", "domain": DOMAIN, "accessRestriction": None}),
                202, "install")
            self.app_ids.append(answer["id"])
            waits.append(answer["taskId"])
        deadline = time.monotonic() + 300
        for task_id in waits:
            while True:
                task = self.expect(owner.get(f"/tasks/{task_id}"), 200, "install task")
                if not task["active"] and not task["pending"]:
                    if not task["success"]:
                        raise SetupError(f"install task {task_id} failed: {task['error']}")
                    break
                if time.monotonic() > deadline:
                    raise SetupError("app installs did not finish within 300s")
                time.sleep(0.25)
            self.task_ids.append(task_id)
        return list(self.app_ids)

    def phase(self, clients, seconds):
        for c in clients:
            c.lat = defaultdict(list)
        deadline = time.monotonic() + seconds
        started = time.perf_counter()
        threads = [threading.Thread(target=c.run, args=(deadline, self.args.max_ops, self.args.think), daemon=True)
                   for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds + TASK_TIMEOUT + 60)  # a hung request ends at its own 30 s timeout
        if any(t.is_alive() for t in threads):
            self.record("error", "a client thread did not finish")
        elapsed = time.perf_counter() - started
        for c in clients:
            c.sweep()
        merged = defaultdict(list)
        for c in clients:
            for kind, values in c.lat.items():
                merged[kind].extend(values)
        return {"lat": merged, "requests": sum(len(v) for v in merged.values()), "seconds": elapsed}

    def scan_logs(self):
        """Count each LOG_MARKERS line in every log under the data dir (server, tasks)."""
        counts, samples = dict.fromkeys(LOG_MARKERS, 0), []
        for folder, _, files in os.walk(self.server.data_dir):
            for name in files:
                path = os.path.join(folder, name)
                if name.endswith((".db", ".db-wal", ".db-shm")) or os.path.getsize(path) > 200 << 20:
                    continue
                with open(path, errors="replace") as f:
                    for line in f:
                        for marker in LOG_MARKERS:
                            if marker in line:
                                counts[marker] += 1
                                samples.append(f"{os.path.relpath(path, self.server.data_dir)}: {line.strip()[:200]}")
        return counts, samples

    def run(self):
        print(f"load: [{self.name}] setting up ...", flush=True)
        self.setup()
        print(f"load: [{self.name}] baseline: 1 client, {self.args.baseline:.0f}s ...", flush=True)
        base = self.phase(self.clients[:1], self.args.baseline)
        print(f"load: [{self.name}] load: {len(self.clients)} clients, {self.args.duration:.0f}s ...", flush=True)
        load = self.phase(self.clients, self.args.duration)
        counts, samples = self.scan_logs()
        return {"base": base, "load": load, "log": counts, "log_samples": samples, "loadavg": os.getloadavg()}

    def close(self, keep=False):
        try:
            if keep:  # the logs and the database stay for a look; the processes go
                self.server.stop()
                stop_proxy(self.server.data_dir)
            else:
                self.server.cleanup()
        finally:
            if self.app_ids:
                remove_app_containers(self.app_ids)


def report(name, res, soak, args):
    w = "-" * 92
    base, load = res["base"], res["load"]
    print(f"\n{w}\n{name}: 2 workers; baseline 1 client {base['seconds']:.0f}s, "
          f"load {len(soak.clients)} clients {load['seconds']:.0f}s, think {args.think * 1000:.0f} ms mean\n{w}")
    print(f"{'operation':<16}{'base n':>8}{'p50 ms':>9}{'p99 ms':>9}  |{'load n':>8}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'p50 x':>8}{'p99 x':>8}")
    for kind in sorted(set(base["lat"]) | set(load["lat"])):
        b, x = base["lat"].get(kind, []), load["lat"].get(kind, [])
        print(f"{kind:<16}{len(b):>8}{pct(b, .5):>9.1f}{pct(b, .99):>9.1f}  |{len(x):>8}{pct(x, .5):>9.1f}"
              f"{pct(x, .99):>9.1f}{ratio(x, b, .5):>8.1f}{ratio(x, b, .99):>8.1f}")
    every = lambda p: [v for vs in p["lat"].values() for v in vs]  # noqa: E731
    print(f"{'all requests':<16}{base['requests']:>8}{pct(every(base), .5):>9.1f}{pct(every(base), .99):>9.1f}  |"
          f"{load['requests']:>8}{pct(every(load), .5):>9.1f}{pct(every(load), .99):>9.1f}")
    print(f"throughput: baseline {base['requests'] / base['seconds']:.0f} req/s, "
          f"load {load['requests'] / load['seconds']:.0f} req/s; load average at the end "
          + " ".join(f"{v:.2f}" for v in res["loadavg"]))
    errors, lost = soak.problems["error"], soak.problems["lost"]
    locked, tracebacks = res["log"][LOG_MARKERS[0]], res["log"][LOG_MARKERS[1]]
    print(f"errors {len(errors)}   lost updates {len(lost)}   'database is locked' {locked}   "
          f"tracebacks in logs {tracebacks}")
    for line in (errors[:10] + lost[:10] + res["log_samples"][:10]):
        print("  " + line)
    print(w)
    return not (errors or lost or locked or tracebacks)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=300, help="seconds of load per backend (default 300)")
    parser.add_argument("--baseline", type=float, default=None,
                        help="seconds of the 1-client baseline (default: a fifth of --duration, 10..60)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (default 50)")
    parser.add_argument("--apps", type=int, default=5,
                        help="apps installed, one per client among the first ones (default 5; 0 = no Docker)")
    parser.add_argument("--think", type=float, default=0.05, help="mean pause between operations, s (default 0.05)")
    parser.add_argument("--max-ops", type=int, default=1_000_000, help="bound on operations per client and phase")
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server logs, database)")
    args = parser.parse_args(argv)
    if args.baseline is None:
        args.baseline = min(60.0, max(10.0, args.duration / 5))
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if set(backends) - {"sqlite", "postgresql"} or args.clients < 1:
        parser.error("--backends takes sqlite and/or postgresql; --clients must be >= 1")

    docker_client, image = None, None
    if args.apps:
        try:
            import docker
            docker_client = docker.from_env()
            docker_client.ping()
            image = images.httpd_image(docker_client, write_data=True)
        except Exception as e:  # noqa: BLE001 - no engine or no busybox: the soak cannot do what it says
            print(f"load: could not run: apps need Docker and the test image ({e}); use --apps 0", file=sys.stderr)
            return 2
    work = tempfile.mkdtemp(prefix="berth-load-")
    ok = True
    try:
        for name in backends:
            cluster = None
            try:
                url = None
                if name == "postgresql":
                    if not PostgresCluster.available():
                        raise SetupError("PostgreSQL (initdb) is not installed")
                    cluster = PostgresCluster().start()
                    url = cluster.new_database()
                soak = Soak(args, name, url, docker_client, image, work)
                try:
                    res = soak.run()
                    ok = report(name, res, soak, args) and ok
                finally:
                    soak.close(args.keep)
            finally:
                if cluster:
                    cluster.stop()
        print("load: PASS" if ok else "load: FAIL")
        return 0 if ok else 1
    except (SetupError, RuntimeError) as e:
        print(f"load: could not run: {e}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            print(f"load: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
