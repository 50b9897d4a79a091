"""The `berth` command driven for real against a real server (apps on the Docker engine behind
Berth's nginx): login, install with progress, logs (followed), backup, restore, clone, errors a
person can act on. Commands run in-process through click's runner, except the followed log,
which runs as a process (it only ends when stopped). The last test scrapes /metrics and checks
that the work the CLI did moved the counters."""
import json
import os
import select
import signal
import stat
import subprocess
import sys
import tarfile
import time

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from cli import main
from support.apps_env import DOMAIN, _closed_port, apps_berth, unique
from support.harness import ROOT, Api


@pytest.fixture(scope="module")
def env(parts, tmp_path_factory):
    with apps_berth(parts, tmp_path_factory) as berth:
        yield berth
        # every app the CLI made, even by a test that failed before noting it, is removed
        berth.app_ids.update(a["id"] for a in berth.api.get("/apps").json()["apps"])


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cli") / "cli.json")


def berth(config, *args, server=None, token=None, input=None):
    env = {"BERTH_SERVER": server, "BERTH_TOKEN": token, "BERTH_CLI_CONFIG": config, "BERTH_APP": None}
    return CliRunner().invoke(main, list(args), env=env, input=input, catch_exceptions=False)


@pytest.fixture(scope="module")
def logged_in(env, config):
    result = berth(config, "login", env.server.url, "-u", "owner", "-p", "Owner-pass-1")
    assert result.exit_code == 0, result.output
    return config


def test_login_keeps_the_token_in_a_file_only_its_owner_reads(env, logged_in):
    mode = stat.S_IMODE(os.stat(logged_in).st_mode)
    assert mode == 0o600
    saved = json.load(open(logged_in))
    assert saved["server"] == env.server.url
    assert Api(env.server.api, saved["token"]).get("/profile").json()["username"] == "owner"
    result = berth(logged_in, "status")
    assert result.exit_code == 0 and "owner (owner)" in result.output


def test_wrong_password_fails_with_the_servers_message(env, tmp_path):
    result = berth(str(tmp_path / "c.json"), "login", env.server.url, "-u", "owner", "-p", "wrong")
    assert result.exit_code == 1
    assert "Invalid input" in result.output or "Unauthorized" in result.output or "password" in result.output.lower()
    assert not (tmp_path / "c.json").exists()


def test_install_waits_with_progress_then_the_app_is_listed_and_served(env, logged_in, tmp_path):
    manifest = tmp_path / "CloudronManifest.json"
    manifest.write_text(json.dumps(env.manifest()))
    location = unique("cli")
    result = berth(logged_in, "install", "--manifest", str(manifest), "--location", location, "--env", "GREETING=hi")
    assert result.exit_code == 0, result.output
    assert "being installed" in result.output and "[100%] Installed" in result.output
    listed = json.loads(berth(logged_in, "list", "--json").output)
    app = next(a for a in listed["apps"] if a["location"] == location)
    env.app_ids.add(app["id"])
    assert app["installationState"] == "installed"
    shown = json.loads(berth(logged_in, "info", "--app", location, "--json").output)
    assert shown["id"] == app["id"] and shown["env"].get("GREETING") == "hi"
    table = berth(logged_in, "list").output
    assert f"{location}.{DOMAIN}" in table and "installed" in table


def _app_id(config, location):
    return json.loads(berth(config, "info", "--app", location, "--json").output)["id"]


@pytest.fixture(scope="module")
def app(env, logged_in, tmp_path_factory):
    """An app installed from a manifest without an image plus --image (as in an app's source folder)."""
    manifest = tmp_path_factory.mktemp("app") / "CloudronManifest.json"
    manifest.write_text(json.dumps({k: v for k, v in env.manifest().items() if k != "dockerImage"}))
    location = unique("cliapp")
    result = berth(logged_in, "install", "--manifest", str(manifest), "--image", env.image, "--location", location,
                   "--quiet")
    assert result.exit_code == 0, result.output
    app_id = _app_id(logged_in, location)
    env.app_ids.add(app_id)
    return location


def test_logs_follow_prints_new_lines_and_keeps_going(env, logged_in, app):
    proc = subprocess.Popen([sys.executable, "-m", "cli", "--config", logged_in, "logs", "--app", app, "-f"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        marker = unique("line")
        time.sleep(1)
        berth(logged_in, "restart", "--app", app, "--quiet")  # restarting logs lines of the app
        container = env.docker.containers.get(_container(env, logged_in, app))
        container.exec_run(["sh", "-c", f"echo {marker} > /proc/1/fd/1"])
        seen, deadline = b"", time.time() + 30
        while marker.encode() not in seen and time.time() < deadline:
            if select.select([proc.stdout], [], [], 0.5)[0]:
                seen += os.read(proc.stdout.fileno(), 65536)
        seen = seen.decode(errors="replace")
        assert marker in seen, seen[-2000:]
        assert proc.poll() is None  # still following
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def _container(env, config, location):
    app_id = _app_id(config, location)
    return env.docker.containers.list(filters={"label": f"berth.app-id={app_id}"})[0].id


def test_exec_runs_a_command_and_exits_with_its_code(env, logged_in, app):
    done = subprocess.run([sys.executable, "-m", "cli", "--config", logged_in, "exec", "--app", app, "--no-tty", "--",
                           "sh", "-c", "cat; echo from-app; ls /app/data >/dev/null; exit 3"],
                          cwd=ROOT, input=b"from-stdin\n", capture_output=True, timeout=60)
    assert done.returncode == 3, done.stderr
    assert b"from-stdin" in done.stdout and b"from-app" in done.stdout


def test_push_and_pull_files_and_folders(env, logged_in, app, tmp_path):
    payload = os.urandom(200_000)
    (tmp_path / "blob.bin").write_bytes(payload)
    pushed = berth(logged_in, "push", "--app", app, str(tmp_path / "blob.bin"), "/app/data/")
    assert pushed.exit_code == 0, pushed.output
    folder = tmp_path / "site"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "index.html").write_text("hello")
    pushed = berth(logged_in, "push", "--app", app, str(folder), "/app/data/site")
    assert pushed.exit_code == 0, pushed.output
    out = tmp_path / "out"
    out.mkdir()
    pulled = berth(logged_in, "pull", "--app", app, "/app/data/blob.bin", str(out))
    assert pulled.exit_code == 0, pulled.output
    assert (out / "blob.bin").read_bytes() == payload
    pulled = berth(logged_in, "pull", "--app", app, "/app/data/site", str(out / "site.tar.gz"))
    assert pulled.exit_code == 0, pulled.output
    with tarfile.open(out / "site.tar.gz") as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("sub/index.html"))
        assert tar.extractfile(member).read() == b"hello"
    refused = berth(logged_in, "pull", "--app", app, "/etc/passwd", str(out))
    assert refused.exit_code == 1 and "Invalid input" in refused.output


def test_backup_list_restore_and_clone(env, logged_in, app):
    created = berth(logged_in, "backup", "create", "--app", app)
    assert created.exit_code == 0, created.output
    listed = json.loads(berth(logged_in, "backup", "list", "--app", app, "--json").output)["backups"]
    assert len(listed) >= 1
    restored = berth(logged_in, "restore", "--app", app, "--quiet")
    assert restored.exit_code == 0, restored.output
    copy = unique("clone")
    cloned = berth(logged_in, "clone", "--app", app, "--location", copy)
    assert cloned.exit_code == 0, cloned.output
    env.app_ids.add(_app_id(logged_in, copy))
    tasks = berth(logged_in, "tasks", "list", "--type", "backup")
    assert "success" in tasks.output


def _write(folder, manifest):
    path = folder / "CloudronManifest.json"
    path.write_text(json.dumps(manifest))
    return str(path)


def test_a_failed_task_exits_non_zero_with_the_servers_reason(env, logged_in, tmp_path):
    location = unique("broken")
    manifest = dict(env.manifest(), dockerImage="berth-test/does-not-exist:1")
    result = berth(logged_in, "install", "--manifest", _write(tmp_path, manifest), "--location", location)
    assert result.exit_code == 1
    assert "failed" in result.output and "does-not-exist" in result.output


def test_errors_a_person_can_act_on(env, logged_in, tmp_path):
    # validation error names the field
    bad = berth(logged_in, "install", "--manifest", _write(tmp_path, env.manifest()), "--location", "Not_A_Label!")
    assert bad.exit_code == 1 and "Invalid input" in bad.output and "location" in bad.output
    # an unreachable server
    gone = berth(str(tmp_path / "x.json"), "status", server=f"http://127.0.0.1:{_closed_port()}", token="t")
    assert gone.exit_code == 1 and "Cannot reach" in gone.output
    # an invalid token suggests logging in again
    expired = berth(str(tmp_path / "y.json"), "status", server=env.server.url, token="not-a-token")
    assert expired.exit_code == 1 and "berth login" in expired.output
    # a role too small says which roles would do
    username = unique("plain")
    added = berth(logged_in, "users", "add", "--email", f"{username}@example.com", "--username", username,
                  "--password", "Plain-pass-123")
    assert added.exit_code == 0, added.output
    other = str(tmp_path / "plain.json")
    assert berth(other, "login", env.server.url, "-u", username, "-p", "Plain-pass-123").exit_code == 0
    denied = berth(other, "users", "list")
    assert denied.exit_code == 1 and "needs one of" in denied.output and "admin" in denied.output


def test_read_commands_print_json_for_scripts(env, logged_in):
    for args, key in ((("users", "list"), "users"), (("groups", "list"), "groups"), (("domains", "list"), "domains"),
                      (("tasks", "list"), "tasks"), (("backups", "list"), "backups"), (("eventlog",), "eventlogs")):
        result = berth(logged_in, *args, "--json")
        assert result.exit_code == 0, result.output
        assert key in json.loads(result.output)


def test_metrics_counters_moved_with_the_work_done(env, logged_in):
    """Installs, backups and a failed login show in the scrape (Prometheus text parser)."""
    api = Api(env.server.api, json.load(open(logged_in))["token"])
    before = _samples(api)
    requests_before = _value(before, "berth_http_requests_total",
                             operation="handlers.cloudron.login", method="POST", status="401")
    failed = api.post("/cloudron/login", json={"username": "owner", "password": "nope"})
    assert failed.status_code == 401
    after = _samples(api)
    assert _value(after, "berth_http_requests_total", operation="handlers.cloudron.login",
                  method="POST", status="401") == requests_before + 1
    assert _value(after, "berth_tasks", type="app", outcome="success") >= 3
    assert _value(after, "berth_tasks", type="app", outcome="failed") >= 1
    assert _value(after, "berth_apps", installation_state="installed", run_state="running", health="healthy") >= 2
    backups = [s for s in after if s.name == "berth_backup_last_size_bytes"]
    assert backups and all(s.value > 0 for s in backups)
    assert any(s.name == "berth_backup_last_age_seconds" and s.value < 600 for s in after)
    assert _value(after, "berth_db_query_duration_seconds_count") > 0
    assert _value(after, "berth_process_resident_memory_bytes") > 10 * 1024 * 1024


def _samples(api):
    r = api.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain")
    return [s for family in text_string_to_metric_families(r.text) for s in family.samples]


def _value(samples, name, **labels):
    found = [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    return sum(found) if found else 0
