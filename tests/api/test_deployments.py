"""Build and deploy from source, for real: a Berth server builds images on the real Docker engine
from tarballs the tests make (FROM scratch + the static busybox of tests/support/images.py; no
registry pulls), rolls them out behind its own nginx, and everything is checked through the API,
the engine and the proxy (curl --resolve on 127.0.0.1).

One module-scoped server and one app: each test deploys on top of what the previous one left
(v1 live, a broken v2 rolled back, a failed build, v3 then a rollback to v1). A polling thread
fetches the app through nginx during deploys and prints the longest window of failed requests.
"""
import io
import json
import tarfile
import threading
import time

import pytest

from support import images
from support.apps_env import DOMAIN, _berth, _closed_port, unique

HEALTH_TIMEOUT = 4


def tarball(version, manifest=None, dockerfile_extra="", extra=None):
    """A gzip source tarball: the test image's build context with www/version.txt = `version`,
    optionally a CloudronManifest.json and more Dockerfile lines or members."""
    files, _ = images._context(images.PORT, False, {"www/version.txt": version.encode()})
    files["Dockerfile"] = files["Dockerfile"] + dockerfile_extra.encode()
    if manifest is not None:
        files["CloudronManifest.json"] = json.dumps(manifest).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path, data in sorted({**files, **(extra or {})}.items()):
            info = tarfile.TarInfo(path)
            if isinstance(data, tuple):
                info.type, info.linkname = tarfile.SYMTYPE, data[1]
                tar.addfile(info)
                continue
            info.size = len(data)
            info.mode = 0o755 if path.startswith(("rootfs/bin/", "rootfs/www/cgi-bin/")) or path.endswith(".sh") \
                else 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class Poller(threading.Thread):
    """GETs /version.txt through nginx in a loop; records (time, ok, body) of each request. A
    request fails when nginx answers 5xx (no upstream) or not at all; the app installed before the
    first deploy has no version.txt (404), which is an answer of the app."""

    def __init__(self, env, fqdn):
        super().__init__(daemon=True)
        self.env, self.fqdn, self.results, self.done = env, fqdn, [], threading.Event()

    def run(self):
        while not self.done.is_set():
            at = time.monotonic()
            try:
                status, _, body = self.env.curl(self.fqdn, "/version.txt")
                self.results.append((at, status < 500, body.strip() if status == 200 else str(status)))
            except AssertionError as e:
                self.results.append((at, False, str(e)[-200:]))
            time.sleep(0.02)

    def stop(self):
        self.done.set()
        self.join(15)
        return self

    def longest_failure(self):
        """(seconds, failed requests) of the longest run of failed requests."""
        longest, run_start, count, best = 0.0, None, 0, 0
        for at, ok, _ in self.results:
            if ok:
                run_start, count = None, 0
                continue
            run_start = at if run_start is None else run_start
            count += 1
            if count > best or (at - run_start) > longest:
                longest, best = max(longest, at - run_start), max(best, count)
        return longest, best

    def versions(self):
        return [body for _, ok, body in self.results if ok and body]


@pytest.fixture(scope="module")
def env(parts, tmp_path_factory):
    berth = _berth(parts, tmp_path_factory)
    berth.env["BERTH_DEPLOY_HEALTH_TIMEOUT"] = str(HEALTH_TIMEOUT)
    try:
        yield berth.start()
    finally:
        berth.close()
        for image in parts["docker"].images.list(filters={"label": "berth.build=true"}):
            if any(app_id == image.labels.get("berth.app-id") for app_id in berth.app_ids):
                try:
                    parts["docker"].images.remove(image.id, force=True)
                except Exception:  # noqa: BLE001 - best effort
                    pass


@pytest.fixture(scope="module")
def app(env):
    location = unique("deploy")
    installed = env.install(location)
    return {"id": installed["id"], "fqdn": f"{location}.{DOMAIN}", "deployments": {}}


def upload(env, app_id, data, build_args=None):
    form = {"buildArgs": json.dumps(build_args)} if build_args else None
    return env.api.post(f"/apps/{app_id}/deploy", files={"file": ("source.tar.gz", data)}, data=form)


def deployments(env, app_id):
    r = env.api.get(f"/apps/{app_id}/deployments")
    assert r.status_code == 200, r.text
    return r.json()["deployments"]


def deploy_polled(env, app, data):
    poller = Poller(env, app["fqdn"])
    poller.start()
    try:
        task = env.run(upload(env, app["id"], data))
        time.sleep(0.3)
    finally:
        poller.stop()
    return task, poller


def test_uploaded_tarball_is_built_and_served_through_the_proxy(env, app):
    task, poller = deploy_polled(env, app, tarball("v1"))
    assert task["success"], (task, env.task_log(task["id"]))
    seconds, failed = poller.longest_failure()
    print(f"\nlongest window of failed requests during the deploy: {seconds * 1000:.0f} ms "
          f"({failed} failed of {len(poller.results)} requests)")
    assert failed == 0, [r for r in poller.results if not r[1]]
    status, _, body = env.curl(app["fqdn"], "/version.txt")
    assert (status, body.strip()) == (200, "v1")
    log = env.task_log(task["id"])
    assert "Step 1/" in log and "COPY rootfs/ /" in log, log          # the build output, line by line
    first, baseline = deployments(env, app["id"])
    assert first["state"] == "live" and first["current"] is True, first
    assert first["image"] == f"berth-build/{app['id']}:2" and first["buildNumber"] == 2
    # what ran since the install is deployment 1, so a rollback can go back to it
    assert (baseline["buildNumber"], baseline["state"], baseline["current"]) == (1, "live", False)
    assert baseline["source"] == {"type": "install"} and baseline["image"] == env.image
    assert first["source"] == {"type": "tarball", "path": first["source"]["path"]}
    assert first["taskId"] == str(task["id"])
    labels = env.docker.images.get(first["image"]).labels
    assert labels["berth.build"] == "true" and labels["berth.app-id"] == app["id"]
    assert labels["berth.deployment"] == first["id"]
    container = env.container(app["id"])             # one container of the app, under its own name
    assert container["Name"] == f"/berth-{app['id']}" and container["Config"]["Image"] == first["image"]
    shown = env.app(app["id"])
    assert shown["installationState"] == "installed" and shown["manifest"]["dockerImage"] == first["image"]
    r = env.api.get(f"/apps/{app['id']}/deployments/{first['id']}")
    assert r.status_code == 200 and r.json()["id"] == first["id"]
    app["deployments"]["v1"] = first["id"]


def test_version_failing_its_health_check_is_rolled_back_and_the_old_one_keeps_serving(env, app):
    before = env.container(app["id"])["Id"]
    broken = env.manifest(healthCheckPath="/missing", version="2.0.0")
    task, poller = deploy_polled(env, app, tarball("v2", manifest=broken))
    assert not task["success"]
    assert "Rolled back" in task["error"]["message"], task
    seconds, failed = poller.longest_failure()
    print(f"\nfailed requests during the rolled back deploy: {failed} ({seconds * 1000:.0f} ms)")
    assert failed == 0 and set(poller.versions()) == {"v1"}
    latest = deployments(env, app["id"])[0]
    assert latest["state"] == "rolled-back" and "Health check" in latest["reason"], latest
    assert latest["manifestVersion"] == "2.0.0"
    assert env.container(app["id"])["Id"] == before
    assert env.app(app["id"])["installationState"] == "installed"
    notes = env.api.get("/notifications").json()["notifications"]
    assert any("rolled back" in n["title"] for n in notes), notes


def test_failed_build_leaves_the_running_app_untouched(env, app):
    before = env.container(app["id"])["Id"]
    task = env.run(upload(env, app["id"], tarball("v-bad", dockerfile_extra="RUN echo building-marker; exit 3\n")))
    assert not task["success"]
    assert "building-marker" in env.task_log(task["id"])
    latest = deployments(env, app["id"])[0]
    assert latest["state"] == "failed" and "non-zero code" in latest["reason"], latest
    assert env.container(app["id"])["Id"] == before
    status, _, body = env.curl(app["fqdn"], "/version.txt")
    assert (status, body.strip()) == (200, "v1")
    assert env.app(app["id"])["installationState"] == "installed"


def test_deploy_tarball_with_a_link_out_of_the_folder_builds_nothing(env, app):
    data = tarball("v-evil", extra={"rootfs/www/passwd": ("symlink", "../../../../../etc/passwd")})
    task = env.run(upload(env, app["id"], data))
    assert not task["success"]
    latest = deployments(env, app["id"])[0]
    assert latest["state"] == "failed" and "links out" in latest["reason"], latest
    assert latest["image"] is None


def test_rollback_to_an_older_deployment(env, app):
    task = env.run(upload(env, app["id"], tarball("v3"), build_args={"UNUSED": "1"}))
    assert task["success"], env.task_log(task["id"])
    assert env.curl(app["fqdn"], "/version.txt")[2].strip() == "v3"
    r = env.api.post(f"/apps/{app['id']}/rollback", json={"deploymentId": app["deployments"]["v1"]})
    poller = Poller(env, app["fqdn"])
    poller.start()
    try:
        task = env.run(r)
    finally:
        poller.stop()
    assert task["success"], env.task_log(task["id"])
    assert env.curl(app["fqdn"], "/version.txt")[2].strip() == "v1"
    assert poller.longest_failure()[1] == 0
    latest = deployments(env, app["id"])[0]
    assert latest["state"] == "live" and latest["current"] and latest["rollbackOf"] == app["deployments"]["v1"]
    assert latest["image"] == f"berth-build/{app['id']}:2"
    # a deployment that never went live cannot be rolled back to
    failed = next(d for d in deployments(env, app["id"]) if d["state"] == "failed")
    r = env.api.post(f"/apps/{app['id']}/rollback", json={"deploymentId": failed["id"]})
    assert r.status_code == 400, r.text
    # a build whose image hygiene removed (BERTH_KEEP_BUILDS): 409 saying so, nothing queued
    v3 = next(d for d in deployments(env, app["id"]) if d["state"] == "live" and not d["current"]
              and d["image"].startswith("berth-build/") and d["image"] != latest["image"])
    env.docker.images.remove(v3["image"], force=True)
    r = env.api.post(f"/apps/{app['id']}/rollback", json={"deploymentId": v3["id"]})
    assert r.status_code == 409 and "has been removed" in r.json()["message"], r.text


def test_image_deploy_of_an_app_with_fixed_ports_stops_the_old_container_meanwhile(env):
    port, location = _closed_port(), unique("ports")
    manifest = env.manifest(tcpPorts={"ECHO_PORT": {"title": "echo", "defaultValue": 2222}})
    installed = env.install(location, manifest, portBindings={"ECHO_PORT": port})
    before = env.container(installed["id"])["Id"]
    image = images.httpd_image(env.docker, extra_files={"www/version.txt": b"image-deploy"})
    task = env.run(env.api.post(f"/apps/{installed['id']}/deploy", json={"source": {"type": "image", "image": image}}))
    assert task["success"], env.task_log(task["id"])
    assert "binds fixed ports" in env.task_log(task["id"])
    assert env.curl(f"{location}.{DOMAIN}", "/version.txt")[2].strip() == "image-deploy"
    container = env.container(installed["id"])
    assert container["Id"] != before and container["Name"] == f"/berth-{installed['id']}"
    assert container["HostConfig"]["PortBindings"]["2222/tcp"][0]["HostPort"] == str(port)
    deployment, _ = deployments(env, installed["id"])
    assert deployment["state"] == "live" and deployment["source"] == {"type": "image", "image": image}
    assert env.app(installed["id"])["manifest"]["tcpPorts"] == manifest["tcpPorts"]


def test_deploy_requests_are_checked(env, app):
    api = env.api
    assert api.post(f"/apps/{app['id']}/deploy", json={"source": {"type": "git", "url": "ext::sh -c touch% /tmp/x"}}
                    ).status_code == 400
    assert api.post(f"/apps/{app['id']}/deploy", json={"source": {"type": "git", "url": "file:///etc"}}
                    ).status_code == 400
    assert api.post(f"/apps/{app['id']}/deploy", json={"source": {"type": "tarball", "path": "/etc/passwd"}}
                    ).status_code == 400
    assert api.post("/apps/nope/deploy", json={"source": {"type": "image", "image": "x:1"}}).status_code == 404
    assert api.get(f"/apps/{app['id']}/deployments/999999").status_code == 404


def test_build_over_its_time_limit_is_stopped(env, tmp_path):
    """containers.image_builds directly (no server): a step silent for longer than the limit ends
    the build with BuildFailed, and no image is tagged."""
    from containers import image_builds
    marker = unique("uncached")
    slow = f"RUN sleep 30 && echo {marker}\n"     # never a cache hit of an earlier run
    with tarfile.open(fileobj=io.BytesIO(tarball("v-slow", dockerfile_extra=slow))) as tar:
        tar.extractall(tmp_path, filter="data") if hasattr(tarfile, "data_filter") else tar.extractall(tmp_path)
    tag = f"berth-build/{unique('slow')}:1"
    started = time.monotonic()
    with pytest.raises(image_builds.BuildFailed, match="longer than 2"):
        image_builds.build(str(tmp_path), tag, app_id="slow", deployment_id=1, timeout=2)
    assert time.monotonic() - started < 15
    assert image_builds.image_info(tag) is None
    # the engine does not stop a build whose client left: the running step's container was removed
    time.sleep(1)
    steps = [c for c in env.docker.containers.list(all=True) if marker in " ".join(c.attrs["Config"]["Cmd"] or [])]
    assert steps == []
