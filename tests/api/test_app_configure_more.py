"""The remaining configure routes for real: cpu_shares, reverse_proxy and data_dir, driven through
the API of one Berth server (SQLite) with one app of the busybox test image on the real Docker
engine behind Berth's own nginx, and checked in the engine, through nginx and on disk.

The data-dir rollback test mounts a tmpfs of a few kB (as root) that the copy cannot fit into, and
unmounts it in its teardown.
"""
import os
import subprocess

import pytest

from support.apps_env import apps_berth, unique
from support.data_tree import populate, snapshot
from support.harness import require


def tree(root):
    return snapshot(root, with_root=True)


@pytest.fixture(scope="module")
def env(parts, tmp_path_factory):
    with apps_berth(parts, tmp_path_factory) as berth:
        yield berth


@pytest.fixture(scope="module")
def app(env):
    return env.install(unique("cfg"))


def exec_in(env, app_id, command):
    container = env.docker.containers.get(env.container(app_id)["Id"])
    result = container.exec_run(["sh", "-c", command])
    assert result.exit_code == 0, result.output


def data_mount(env, app_id):
    return [m["Source"] for m in env.container(app_id)["Mounts"] if m["Destination"] == "/app/data"]


# ---- reverse_proxy ------------------------------------------------------------------------------

def test_reverse_proxy_settings_are_served_by_nginx(env, app):
    robots = "User-agent: *\nDisallow: /private # keep out\n"
    csp = "default-src 'self'; img-src *"
    r = env.api.post(f"/apps/{app['id']}/configure/reverse_proxy",
                     json={"robotsTxt": robots, "csp": csp, "hstsPreload": True})
    assert (r.status_code, r.json()) == (200, {}), r.text
    assert env.app(app["id"])["reverseProxyConfig"] == {"robotsTxt": robots, "csp": csp, "hstsPreload": True}
    status, headers, body = env.curl(app["fqdn"], "/robots.txt")
    assert (status, body) == (200, robots)
    status, headers, _ = env.curl(app["fqdn"], "/")
    assert status == 200
    assert headers["content-security-policy"] == csp
    assert "preload" in headers["strict-transport-security"]

    # cleared again: no robots.txt of Berth's, no headers
    r = env.api.post(f"/apps/{app['id']}/configure/reverse_proxy", json={})
    assert r.status_code == 200, r.text
    assert env.app(app["id"])["reverseProxyConfig"] == {"robotsTxt": None, "csp": None, "hstsPreload": False}
    status, headers, _ = env.curl(app["fqdn"], "/")
    assert "content-security-policy" not in headers and "strict-transport-security" not in headers
    assert env.curl(app["fqdn"], "/robots.txt")[0] == 404


@pytest.mark.parametrize("body", [
    {"csp": "default-src 'self'\"; } server { listen 8081; location / { return 200 \"pwned"},
    {"csp": "default-src 'self'\nadd_header X-Injected yes"},
    {"robotsTxt": "User-agent: *\";\n}\nlocation /x { return 200 \"pwned"},
    {"robotsTxt": "Disallow: /${request_uri}"},
])
def test_reverse_proxy_injection_into_the_vhost_is_refused(env, app, body):
    with open(env.vhost(app["id"])) as f:
        before = f.read()
    r = env.api.post(f"/apps/{app['id']}/configure/reverse_proxy", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["message"].startswith(next(iter(body)))
    with open(env.vhost(app["id"])) as f:
        assert f.read() == before
    assert "x-injected" not in env.curl(app["fqdn"], "/")[1]


# ---- cpu_shares ---------------------------------------------------------------------------------

def test_cpu_shares_reach_the_container_and_the_proxy_settings_stay(env, app):
    r = env.api.post(f"/apps/{app['id']}/configure/reverse_proxy", json={"csp": "default-src 'self'"})
    assert r.status_code == 200, r.text
    before = env.container(app["id"])["Id"]
    task = env.run(env.api.post(f"/apps/{app['id']}/configure/cpu_shares", json={"cpuShares": 700}))
    assert task["success"], task
    assert env.container(app["id"])["HostConfig"]["CpuShares"] == 700
    assert env.container(app["id"])["Id"] != before
    shown = env.wait_app(app["id"], "healthy", lambda a: a["health"] == "healthy")
    assert (shown["cpuShares"], shown["installationState"]) == (700, "installed")
    # the re-created vhost keeps the app's proxy settings
    assert env.curl(app["fqdn"], "/")[1]["content-security-policy"] == "default-src 'self'"


@pytest.mark.parametrize("value", ["abc", 1.5, 1, 1025, None, True])
def test_cpu_shares_out_of_range_or_not_an_integer_is_refused(env, app, value):
    r = env.api.post(f"/apps/{app['id']}/configure/cpu_shares", json={"cpuShares": value})
    assert r.status_code == 400, r.text
    assert "cpuShares" in r.json()["message"]


# ---- data_dir -----------------------------------------------------------------------------------

def test_data_dir_move_keeps_every_byte_and_mode_and_moving_back_works(env, app, tmp_path):
    default = os.path.join(env.app_dir(app["id"]), "data")
    populate(default, escape_link=True)
    exec_in(env, app["id"], "echo written by the app > /app/data/by-app.txt && chmod 640 /app/data/by-app.txt")
    before = tree(default)
    assert "by-app.txt" in before
    starts = open(os.path.join(default, "starts")).read()

    target = str(tmp_path / "elsewhere" / "data")
    task = env.run(env.api.post(f"/apps/{app['id']}/configure/data_dir", json={"dataDir": target + "/"}))
    assert task["success"], task
    shown = env.wait_app(app["id"], "healthy", lambda a: a["health"] == "healthy")
    assert (shown["dataDir"], shown["installationState"], shown["runState"]) == (target, "installed", "running")
    assert tree(target) == before
    assert os.readlink(os.path.join(target, "escape")) == "/etc"     # a link still, /etc not copied
    assert not os.path.exists(default)                        # the old copy is gone after success
    assert data_mount(env, app["id"]) == [target]
    # the app runs from the new folder: its start was recorded there, and it is served
    assert open(os.path.join(target, "starts")).read().startswith(starts)
    assert len(open(os.path.join(target, "starts")).read()) > len(starts)
    assert env.curl(app["fqdn"], "/")[0] == 200

    task = env.run(env.api.post(f"/apps/{app['id']}/configure/data_dir", json={"dataDir": None}))
    assert task["success"], task
    shown = env.wait_app(app["id"], "healthy", lambda a: a["health"] == "healthy")
    assert shown["dataDir"] is None
    assert tree(default) == before
    assert not os.path.exists(target)
    assert data_mount(env, app["id"]) == [default]


@pytest.mark.parametrize("folder", ["/etc", "/", "/var/lib/docker/x", "relative", "/proc/self"])
def test_data_dir_in_a_system_folder_is_refused(env, app, folder):
    r = env.api.post(f"/apps/{app['id']}/configure/data_dir", json={"dataDir": folder})
    assert r.status_code == 400, r.text
    assert env.app(app["id"])["dataDir"] is None


def test_data_dir_inside_berths_data_dir_or_not_empty_is_refused(env, app, tmp_path):
    r = env.api.post(f"/apps/{app['id']}/configure/data_dir", json={"dataDir": os.path.join(env.data_dir, "x")})
    assert r.status_code == 400, r.text
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    r = env.api.post(f"/apps/{app['id']}/configure/data_dir", json={"dataDir": str(tmp_path / "full")})
    assert r.status_code == 400 and "not empty" in r.json()["message"], r.text


@pytest.fixture
def tiny(tmp_path):
    require("root (to mount a tmpfs)", os.geteuid() == 0)
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], check=True)
    try:
        yield str(mount)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_data_dir_move_that_fails_rolls_back_to_the_old_folder(env, app, tiny):
    default = os.path.join(env.app_dir(app["id"]), "data")
    with open(os.path.join(default, "big.bin"), "wb") as f:
        f.write(os.urandom(512 * 1024))            # does not fit into the 64k tmpfs
    before = tree(default)
    task = env.run(env.api.post(f"/apps/{app['id']}/configure/data_dir", json={"dataDir": tiny}))
    assert not task["success"], task
    shown = env.app(app["id"])
    assert shown["dataDir"] is None
    assert tree(default) == before                 # the old folder is kept and used
    assert os.listdir(tiny) == []                  # what the copy made is gone
    assert data_mount(env, app["id"]) == [default]
    assert env.container(app["id"])["State"]["Running"]
    os.remove(os.path.join(default, "big.bin"))
    # repair brings the app back to installed, still on its old folder
    assert env.run(env.api.post(f"/apps/{app['id']}/repair", json={}))["success"]
    assert env.app(app["id"])["installationState"] == "installed"
