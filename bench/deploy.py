#!/usr/bin/env python3
"""How long Berth takes to rebuild and redeploy an app from git, beside doing it by hand, and how
long requests fail while it switches versions, measured in one run:

    .venv/bin/python bench/deploy.py [--runs 3] [--json out.json]

1. Starts a real Berth (tests/support/harness.py, SQLite, managed nginx on free 127.0.0.1 ports),
   activates it, installs the busybox test app (tests/support/images.py) and serves a git
   repository of its source (tests/support/git_server.py: FROM scratch + static busybox, no
   registry) with `git daemon`. The app's git source points there. One deploy of that source is
   the warm-up (cold build), not counted.
2. --runs times, each measured while a prober GETs the app's page through nginx every 20 ms:
   - unchanged: POST /apps/{id}/deploy of the same commit (the build is a cache hit) -> seconds
     until the deploy task is done and the deployment live;
   - one-file change: a commit changing www/index.html, announced by a signed GitHub-style push
     webhook -> seconds until the proxy serves the new page;
   - by hand, for each: `git clone` + `docker build` (same engine, same cache) + `docker run` +
     health wait of the same source, until the container answers its health path.
   Prints median / best of each, the overhead Berth - by hand (target under 1 s), and the longest
   window in which the prober's requests failed (no answer or 5xx; target: none at all — the old
   container serves until the new one is healthy).

Everything it created (containers, images it tagged, nginx, data dir, git server) is removed at
the end. Exit status 0 whatever the figures (a benchmark reports); 2 when it could not run.
"""
import argparse
import datetime
import hashlib
import hmac
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import common  # first: puts the repository and tests/ on sys.path
import requests

from support import git_server, images
from support.harness import proxy_env

DOMAIN = "example.test"
TARGET_OVERHEAD_SECS = 1.0
POLL_SECS = 0.02


class Prober(threading.Thread):
    """GETs https://<fqdn>/ through nginx every POLL_SECS; keeps (time, ok, body marker)."""

    def __init__(self, fqdn, port):
        super().__init__(daemon=True)
        import urllib3
        urllib3.disable_warnings()
        self.pool = urllib3.HTTPSConnectionPool("127.0.0.1", port, server_hostname=fqdn, assert_hostname=False,
                                                cert_reqs="CERT_NONE", timeout=urllib3.Timeout(2.0), retries=False,
                                                maxsize=1)
        self.fqdn = fqdn
        self.samples = []
        self.stop_event = threading.Event()

    def fetch(self):
        try:
            r = self.pool.request("GET", "/", headers={"Host": self.fqdn})
            return r.status < 500, r.data.decode(errors="replace")
        except Exception:  # noqa: BLE001 - any failure is a failed request
            return False, ""

    def run(self):
        while not self.stop_event.is_set():
            ok, body = self.fetch()
            self.samples.append((time.perf_counter(), ok, body))
            time.sleep(POLL_SECS)

    def longest_failure(self, since):
        """Seconds of the longest run of failed samples after `since` (0.0 when none failed)."""
        longest, began = 0.0, None
        for when, ok, _ in [s for s in self.samples if s[0] >= since]:
            if not ok and began is None:
                began = when
            elif ok and began is not None:
                longest, began = max(longest, when - began), None
        if began is not None:
            longest = max(longest, self.samples[-1][0] - began)
        return longest

    def failures(self, since):
        return sum(1 for when, ok, _ in self.samples if when >= since and not ok)


class Bench:
    def __init__(self):
        import docker
        self.docker = docker.from_env()
        self.docker.ping()
        if not git_server.available():
            raise RuntimeError("needs git with git-daemon (Debian package git)")
        self.image = images.httpd_image(self.docker, write_data=True)
        self.tmp = tempfile.mkdtemp(prefix="berth-bench-deploy-")
        self.env = proxy_env({"BERTH_RATE_LIMIT": "0"})
        self.https_port = int(self.env["BERTH_PROXY_HTTPS_PORT"])
        self.server = self.api = self.git = self.prober = None
        self.app_ids, self.direct, self.tags = set(), [], []
        self.count = 0

    def start(self):
        self.server = common.start_server(self.tmp, self.env)
        self.api = common.activate(self.server, DOMAIN)
        manifest = {"manifestVersion": 2, "id": "io.berth.bench.deploy", "version": "1.0.0", "title": "bench",
                    "dockerImage": self.image, "httpPort": images.PORT, "healthCheckPath": images.HEALTH_PATH}
        app = common.post_install(self.api, manifest, "deploybench", DOMAIN)
        self.app_id, self.fqdn = app["id"], f"deploybench.{DOMAIN}"
        self.app_ids.add(self.app_id)
        common.wait_healthy(self.api, self.app_id, 0.05, timeout=120)
        self.git = git_server.GitServer().start()
        self.repo_url = self.git.create("app")
        self.sha = self.git.commit("app", git_server.app_source_files("v0"), "v0")
        r = self.api.post(f"/apps/{self.app_id}/git_source", json={"url": self.repo_url, "branch": "main"})
        r.raise_for_status()
        self.secret = r.json()["webhookSecret"]
        self.prober = Prober(self.fqdn, self.https_port)
        self.prober.start()

    # -- Berth ----------------------------------------------------------------------------------

    def _wait_deploy(self, task_id):
        task = common.wait_task(self.api, task_id, POLL_SECS, timeout=600)
        if not task["success"]:
            log = self.api.get(f"/tasks/{task_id}/logs", params={"lines": 30, "format": "plain"}).text
            raise RuntimeError(f"deploy task {task_id} failed: {task['error']}\n{log}")
        self.last_task = task_id

    def phases(self, task_id):
        """[(seconds since the task's first log line, message)] of its `progress:` lines."""
        text = self.api.get(f"/tasks/{task_id}/logs", params={"lines": -1, "format": "plain"}).text
        marks, first = [], None
        for line in text.splitlines():
            stamp, _, message = line.partition(" ")
            try:
                when = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
            except ValueError:
                continue
            first = when if first is None else first
            if message.startswith(("progress:", "task finished")):
                marks.append((when - first, message))
        return marks

    def deploy_unchanged(self):
        """Seconds from POST /apps/{id}/deploy of the same commit to the task done (deployment live)."""
        start = time.perf_counter()
        r = self.api.post(f"/apps/{self.app_id}/deploy",
                          json={"source": {"type": "git", "url": self.repo_url, "ref": "main"}})
        if r.status_code != 202:
            raise RuntimeError(f"deploy answered {r.status_code}: {r.text}")
        self._wait_deploy(r.json()["taskId"])
        return time.perf_counter() - start

    def deploy_change(self):
        """Seconds from the signed push webhook of a one-file change to the new page served."""
        self.count += 1
        marker = f"change-{self.count}-{uuid.uuid4().hex[:6]}"
        page = f"<p>{images.INDEX_MARKER} {marker}</p>\n".encode()
        self.sha = self.git.commit("app", {"rootfs/www/index.html": page}, marker)
        body = json.dumps({"ref": "refs/heads/main", "after": self.sha}).encode()
        signature = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        start = time.perf_counter()
        r = requests.post(f"{self.server.api}/webhooks/apps/{self.app_id}", data=body, timeout=10, headers={
            "Content-Type": "application/json", "X-GitHub-Event": "push", "X-Hub-Signature-256": signature,
            "X-GitHub-Delivery": str(uuid.uuid4())})
        if r.status_code != 202 or "taskId" not in r.json():
            raise RuntimeError(f"webhook answered {r.status_code}: {r.text}")
        deadline = time.monotonic() + 300
        while True:
            ok, page = self.prober.fetch()
            if ok and marker in page:
                elapsed = time.perf_counter() - start
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the changed page was never served")
            time.sleep(POLL_SECS)
        self._wait_deploy(r.json()["taskId"])
        return elapsed, marker

    # -- by hand --------------------------------------------------------------------------------

    def by_hand(self):
        """Seconds for git clone + docker build + docker run + health wait of the current commit."""
        self.count += 1
        work = os.path.join(self.tmp, f"hand-{self.count}")
        tag = f"berth-bench-deploy/hand:{self.count}"
        name = f"berth-bench-deploy-{os.getpid()}-{self.count}"
        start = time.perf_counter()
        subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", "main", self.repo_url, work], check=True)
        self.tags.append(tag)
        self.docker.images.build(path=work, tag=tag, rm=True, pull=False)
        self.direct.append(name)
        container = self.docker.containers.run(tag, name=name, detach=True,
                                               ports={f"{images.PORT}/tcp": ("127.0.0.1", None)},
                                               labels={"berth.bench": "true"})
        common.wait_answering(common.published_port(container, images.PORT), images.HEALTH_PATH,
                              "the container run by hand")
        elapsed = time.perf_counter() - start
        container.remove(force=True)
        self.direct.remove(name)
        shutil.rmtree(work, ignore_errors=True)
        return elapsed

    def cleanup(self):
        try:
            if self.prober is not None:
                self.prober.stop_event.set()
            common.stop_berth(self.server, self.tmp, self.app_ids)
        finally:
            for name in self.direct:
                try:
                    self.docker.containers.get(name).remove(force=True)
                except Exception:  # noqa: BLE001 - already gone
                    pass
            built = self.docker.images.list(filters={"label": "berth.build=true"})
            for image in built:
                if (image.labels or {}).get("berth.app-id") in self.app_ids:
                    try:
                        self.docker.images.remove(image.id, force=True)
                    except Exception:  # noqa: BLE001
                        pass
            for tag in self.tags:
                try:
                    self.docker.images.remove(tag, force=True)
                except Exception:  # noqa: BLE001
                    pass
            if self.git is not None:
                self.git.stop()
            shutil.rmtree(self.tmp, ignore_errors=True)


def measure(bench, args):
    bench.start()
    print(f"Berth at {bench.server.url}, app {bench.fqdn} via nginx on 127.0.0.1:{bench.https_port}, "
          f"git at {bench.repo_url}", flush=True)
    print("warm-up deploy (cold build) ...", flush=True)
    bench.deploy_unchanged()
    bench.by_hand()
    figures = {"unchanged": [], "hand_unchanged": [], "change": [], "hand_change": [], "windows": [], "failed": 0}
    for i in range(args.runs):
        since = time.perf_counter()
        figures["unchanged"].append(bench.deploy_unchanged())
        figures["phases_unchanged"] = bench.phases(bench.last_task)
        figures["hand_unchanged"].append(bench.by_hand())
        elapsed, _ = bench.deploy_change()
        figures["phases_change"] = bench.phases(bench.last_task)
        figures["change"].append(elapsed)
        figures["hand_change"].append(bench.by_hand())
        figures["windows"].append(bench.prober.longest_failure(since))
        figures["failed"] += bench.prober.failures(since)
        print(f"  run {i + 1}/{args.runs}: unchanged Berth {figures['unchanged'][-1]:.3f} s / by hand "
              f"{figures['hand_unchanged'][-1]:.3f} s; one-file change Berth {elapsed:.3f} s / by hand "
              f"{figures['hand_change'][-1]:.3f} s; longest failure window {figures['windows'][-1] * 1000:.0f} ms",
              flush=True)
    figures["probes"] = len(bench.prober.samples)
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="measured deploys of each kind")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    # killed (a timeout, Ctrl-C in make): still clean up (common.run's finally)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    figures = common.run(Bench, lambda bench: measure(bench, args))
    if figures is None:
        return 2
    print()
    print(f"Redeploy to live, {args.runs} runs each (median / best):")
    print(f"  {'':44} {'median':>9} {'best':>9}")
    for label, berth, hand in (("unchanged source (build cache hit)", "unchanged", "hand_unchanged"),
                               ("one-file change (signed push webhook)", "change", "hand_change")):
        b, h = figures[berth], figures[hand]
        overhead = statistics.median(b) - statistics.median(h)
        verdict = "met" if overhead < TARGET_OVERHEAD_SECS else "MISSED"
        print(f"  {label}")
        print(f"    {'Berth':42} {statistics.median(b):8.3f}s {min(b):8.3f}s")
        print(f"    {'by hand (clone + build + run + health)':42} {statistics.median(h):8.3f}s {min(h):8.3f}s")
        print(f"    {'overhead Berth - by hand':42} {overhead:8.3f}s {min(b) - min(h):8.3f}s"
              f"   (target < {TARGET_OVERHEAD_SECS:g} s: {verdict})")
    for label, key in (("unchanged", "phases_unchanged"), ("one-file change", "phases_change")):
        print(f"  where the last {label} deploy's time went (task log, seconds from its first line):")
        for offset, message in figures.get(key, []):
            print(f"    {offset:7.3f}s  {message[:90]}")
    window = max(figures["windows"]) if figures["windows"] else 0.0
    print(f"  failed requests during the measured deploys: {figures['failed']} of {figures['probes']} probes; "
          f"longest failure window {window * 1000:.0f} ms (target: 0, {'met' if not figures['failed'] else 'MISSED'})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
