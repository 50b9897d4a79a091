#!/usr/bin/env python3
"""What addons cost, beside the baseline measured in the same run:

    .venv/bin/python bench/addons.py [--runs 5] [--apps 50] [--json out.json]

1. Install to healthy of the test app (tests/support/images.py: FROM scratch + static busybox
   httpd) declaring the `postgresql` and `redis` addons, beside the SAME app declaring none,
   alternating, --runs times each, on one real Berth (gunicorn + SQLite in a temp dir, its nginx
   on free 127.0.0.1 ports). One warm-up install with the addons comes first and is not counted:
   it gets (pulls, or builds from Debian packages when offline) the service images and starts the
   shared PostgreSQL, so the figures are "once the service is up" (target: addons add under 2 s).
   Each app is uninstalled after it was measured (not counted).
2. --apps apps with the `postgresql` addon installed one after another: ONE shared PostgreSQL
   then holds --apps app databases. Its memory (the engine's figure without page cache, as
   `docker stats` shows it, and what GET /services/postgresql says) is printed beside --apps
   separate PostgreSQL servers: containers of the same image started here, each with one
   database made in it, measured the same way once all are ready, then removed.

Everything it created (apps, service containers, the separate servers, nginx, data dir) is
removed at the end, whatever happened. Exit status is 0 whatever the figures (a benchmark
reports, it does not fail CI); 2 means the benchmark itself could not run.
"""
import argparse
import concurrent.futures
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

import common  # first: puts the repository and tests/ on sys.path

from support import images
from support.harness import proxy_env

DOMAIN = "example.test"
TARGET_ADDED_SECS = 2.0
POLL_SECS = 0.02
INSTALL_TIMEOUT = 1800     # the warm-up may build the service images (a few minutes offline)
MIB = 1024 * 1024
LABEL = "berth.bench-addons"


def memory_used(container) -> int:
    """Bytes in use by a running container without its page cache (what `docker stats` shows)."""
    stats = container.stats(stream=False)
    memory = stats.get("memory_stats") or {}
    detail = memory.get("stats") or {}
    cache = detail.get("inactive_file", detail.get("total_inactive_file", detail.get("cache", 0)))
    return max(0, memory.get("usage", 0) - cache)


class Bench:
    def __init__(self):
        import docker
        self.docker = docker.from_env()
        self.docker.ping()
        self.image = images.httpd_image(self.docker, write_data=True)
        self.tmp = tempfile.mkdtemp(prefix="berth-bench-addons-")
        self.env = proxy_env({"BERTH_RATE_LIMIT": "0"})  # the bench polls far over the per-token limit
        self.server = None
        self.api = None
        self.app_ids = set()
        self.count = 0

    def start(self):
        self.server = common.start_server(self.tmp, self.env)
        self.api = common.activate(self.server, DOMAIN)

    def manifest(self, addons):
        return {"manifestVersion": 2, "id": "io.berth.bench.addons", "version": "1.0.0", "title": "bench",
                "dockerImage": self.image, "httpPort": images.PORT, "healthCheckPath": images.HEALTH_PATH,
                "addons": {name: {} for name in addons}}

    def install(self, addons, timeout=INSTALL_TIMEOUT):
        """(seconds from POST /apps/install to installed + healthy, app id)."""
        self.count += 1
        start = time.perf_counter()
        app_id = common.post_install(self.api, self.manifest(addons), f"b{self.count}", DOMAIN)["id"]
        self.app_ids.add(app_id)
        common.wait_healthy(self.api, app_id, POLL_SECS, timeout)
        return time.perf_counter() - start, app_id

    def uninstall(self, app_id):
        common.uninstall(self.api, app_id, POLL_SECS)
        self.app_ids.discard(app_id)

    def instance(self):
        """This Berth's instance id: the label its containers and network carry (containers.instance_id)."""
        return hashlib.sha256(os.path.realpath(os.path.join(self.tmp, "berth")).encode()).hexdigest()[:16]

    def shared_postgresql(self):
        """The container of this Berth's shared PostgreSQL."""
        found = self.docker.containers.list(filters={"label": ["berth.service=postgresql",
                                                               f"berth.instance={self.instance()}"]})
        if len(found) != 1:
            raise RuntimeError(f"expected one shared PostgreSQL container of this Berth, found {len(found)}")
        return found[0]

    # -- 50 separate servers --------------------------------------------------------------------

    def separate_servers(self, image, count):
        """Start `count` PostgreSQL containers of `image`, one database each; their memory once all
        are ready (list of bytes). Removed afterwards."""
        names = [f"berth-bench-pg-{os.getpid()}-{i}" for i in range(count)]

        def run(name):
            container = self.docker.containers.run(image, name=name, detach=True, labels={LABEL: "true"},
                                                   environment={"POSTGRES_PASSWORD": "bench-only-password"})
            deadline = time.monotonic() + 300
            while True:
                code, _ = container.exec_run(["pg_isready", "-q", "-h", "127.0.0.1"])
                if code == 0:
                    code, out = container.exec_run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c",
                                                    "CREATE DATABASE app"],
                                                   environment={"PGPASSWORD": "bench-only-password"})
                    if code == 0:
                        return container
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not become ready: {container.logs(tail=5).decode()}")
                time.sleep(0.5)

        try:
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                started = list(pool.map(run, names))
            time.sleep(5)  # let the autovacuum launcher and checkpointer settle, as the shared one had
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                return list(pool.map(memory_used, started))
        finally:
            self.remove_separate()

    def remove_separate(self):
        for container in self.docker.containers.list(all=True, filters={"label": f"{LABEL}=true"}):
            try:
                container.remove(force=True, v=True)
            except Exception:  # noqa: BLE001 - already gone
                pass

    def cleanup(self):
        try:
            common.stop_berth(self.server, self.tmp, self.app_ids)
        finally:
            self.remove_separate()
            # The service containers and the app network of this Berth (labelled with its instance id).
            mine = f"berth.instance={self.instance()}"
            for container in self.docker.containers.list(all=True, filters={"label": ["berth.service", mine]}):
                container.remove(force=True, v=True)
            for network in self.docker.networks.list(filters={"label": mine}):
                try:
                    network.remove()
                except Exception:  # noqa: BLE001 - gone already
                    pass
            shutil.rmtree(self.tmp, ignore_errors=True)



def measure(bench, args):
    """The figures (see the module docs); common.run cleans up."""
    figures = {}
    bench.start()
    print(f"image {bench.image}; Berth at {bench.server.url}", flush=True)
    print("warm-up install with postgresql + redis (gets the service images, starts PostgreSQL) ...",
          flush=True)
    warm, app_id = bench.install(["postgresql", "redis"])
    bench.uninstall(app_id)
    print(f"  warm-up took {warm:.1f} s", flush=True)
    plain, with_addons = [], []
    for i in range(args.runs):
        elapsed, app_id = bench.install(["postgresql", "redis"], timeout=300)
        bench.uninstall(app_id)
        with_addons.append(elapsed)
        elapsed, app_id = bench.install([], timeout=300)
        bench.uninstall(app_id)
        plain.append(elapsed)
        print(f"  run {i + 1}/{args.runs}: with addons {with_addons[-1]:.3f} s, "
              f"without {plain[-1]:.3f} s", flush=True)
    figures.update(with_addons=with_addons, without=plain)

    if args.apps:
        print(f"{args.apps} apps with postgresql installed one after another ...", flush=True)
        t = time.perf_counter()
        for _ in range(args.apps):
            bench.install(["postgresql"], timeout=300)
        print(f"  took {time.perf_counter() - t:.1f} s", flush=True)
        time.sleep(5)
        shared = bench.shared_postgresql()
        shared_used = memory_used(shared)
        reported = bench.api.get("/services/postgresql").json()["service"]
        image = shared.attrs["Config"]["Image"]
        print(f"{args.apps} separate PostgreSQL servers of {image} ...", flush=True)
        separate = bench.separate_servers(image, args.apps)
        figures.update(shared_bytes=shared_used, shared_reported=reported["memoryUsed"],
                       separate_bytes=separate, image=image)
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="measured installs of each kind")
    parser.add_argument("--apps", type=int, default=50, help="apps sharing one PostgreSQL")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    figures = common.run(Bench, lambda bench: measure(bench, args))
    if figures is None:
        return 2

    w50, p50 = statistics.median(figures["with_addons"]), statistics.median(figures["without"])
    added = w50 - p50
    print()
    print(f"Install to healthy, {args.runs} runs each (median / best):")
    print(f"  {'':34} {'median':>9} {'best':>9}")
    print(f"  {'with postgresql + redis':34} {w50:8.3f}s {min(figures['with_addons']):8.3f}s")
    print(f"  {'the same app without addons':34} {p50:8.3f}s {min(figures['without']):8.3f}s")
    verdict = "met" if added < TARGET_ADDED_SECS else "MISSED"
    print(f"  {'added by the addons':34} {added:8.3f}s "
          f"{min(figures['with_addons']) - min(figures['without']):8.3f}s   "
          f"(target < {TARGET_ADDED_SECS:g} s: {verdict})")
    if "shared_bytes" in figures:
        separate = figures["separate_bytes"]
        total = sum(separate)
        print()
        print(f"Memory of {args.apps} app databases ({figures['image']}):")
        print(f"  one shared PostgreSQL, {args.apps} databases   {figures['shared_bytes'] / MIB:9.1f} MiB"
              f"   (GET /services/postgresql: {figures['shared_reported'] / MIB:.1f} MiB)")
        print(f"  {args.apps} separate PostgreSQL servers     {total / MIB:9.1f} MiB"
              f"   ({statistics.median(separate) / MIB:.1f} MiB each, median)")
        print(f"  ratio separate / shared                {total / max(1, figures['shared_bytes']):9.1f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
