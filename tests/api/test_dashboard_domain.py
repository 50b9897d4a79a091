"""Moving the dashboard to `my.<domain>` (prepare_dashboard_domain / set_dashboard_domain) against a
real ACME CA (pebble), Berth's API then served through its managed nginx under that name; and the
certificate odds and ends: renew_certs refused while a renewal runs, an app's uploaded certificate
deleted with the app, a notification for an uploaded certificate about to end."""
import json
import os
import subprocess
import time

import pytest

from support.acme_env import berth_with_pebble, served_leaf, verifies_against
from support.apps_env import unique
from support.certs import make_cert

DASH_DOMAIN = "dash.test"
DASH_FQDN = f"my.{DASH_DOMAIN}"


@pytest.fixture(scope="module")
def berth(parts, tmp_path_factory):
    # nginx on every interface (private ports): apps reach the API at my.<domain> through the
    # host's address on their network, as on a real server.
    with berth_with_pebble(parts, tmp_path_factory, DASH_DOMAIN, BERTH_PROXY_LISTEN="") as env:
        yield env


def status_through_nginx(berth):
    status, _, body = berth.curl(DASH_FQDN, "/api/v1/cloudron/status")
    return status, (json.loads(body) if status == 200 else body)


def test_dashboard_domain_is_prepared_set_and_served_through_nginx(berth):
    api = berth.api
    for path in ("/cloudron/prepare_dashboard_domain", "/cloudron/set_dashboard_domain"):
        assert api.post(path, json={"domain": "nowhere.test"}).status_code == 404

    task = berth.run(api.post("/cloudron/prepare_dashboard_domain", json={"domain": DASH_DOMAIN}))
    log = berth.task_log(task["id"])
    assert task["success"], (task, log, berth.pebble.log())
    assert f"{DASH_FQDN}: certificate issued" in log
    assert api.get(f"/tasks/{task['id']}").json()["type"] == "prepareDashboardDomain"

    r = api.post("/cloudron/set_dashboard_domain", json={"domain": DASH_DOMAIN})
    assert r.status_code == 204, r.text
    assert api.get("/cloudron/status").json()["adminFqdn"] == DASH_FQDN
    status, body = status_through_nginx(berth)
    assert status == 200 and body["adminFqdn"] == DASH_FQDN, body
    # ... with the certificate the CA issued for that name
    assert verifies_against(berth, DASH_FQDN, berth.pebble.root_pem())
    assert "Pebble" in served_leaf(berth, DASH_FQDN).issuer.rfc4514_string()

    # The vhost is kept through a restart on another port: the start-up reconciliation (run by
    # the first health check) rewrites every vhost, this one with the API's new port.
    berth.server.stop()
    berth.start()
    deadline = time.time() + 30
    while status_through_nginx(berth)[0] != 200:
        assert time.time() < deadline, status_through_nginx(berth)
        time.sleep(0.5)
    assert status_through_nginx(berth)[1]["adminFqdn"] == DASH_FQDN


def test_apps_reach_the_api_at_the_dashboard_origin(berth):
    assert berth.api.get("/cloudron/status").json()["adminFqdn"] == DASH_FQDN   # set by the test above
    app = berth.install(unique("caller"))
    env = berth.container_env(app["fqdn"])
    assert env["CLOUDRON_API_ORIGIN"] == f"https://{DASH_FQDN}:{berth.https_port}", env
    # From inside the container the name resolves (through the container's hosts file) to the
    # host, where Berth's nginx serves it: plain HTTP answers with the redirect to the API origin.
    # (Over HTTPS, busybox's own TLS client fails its handshake with nginx: alert 40. It does
    # complete one with `openssl s_server`; not investigated further. The TLS side is checked from
    # the host by the test above.)
    request = f"GET /api/v1/cloudron/status HTTP/1.0\r\nHost: {DASH_FQDN}\r\n\r\n"
    out = subprocess.run(["docker", "exec", f"berth-{app['id']}", "sh", "-c",
                          f'printf "{request}" | nc -w 5 {DASH_FQDN} {berth.http_port}'],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("HTTP/1.1 301"), out.stdout
    assert f"Location: {env['CLOUDRON_API_ORIGIN']}/api/v1/cloudron/status" in out.stdout, out.stdout
    assert berth.run(berth.api.post(f"/apps/{app['id']}/uninstall"))["success"]


def test_renew_certs_is_refused_while_a_renewal_runs(berth):
    # A name pebble validates at an address where nothing answers: the order takes a while.
    location = unique("slow")
    berth.pebble.add_a(f"{location}.{DASH_DOMAIN}", "192.0.2.1")
    known = {t["id"] for t in berth.api.get("/tasks", params={"type": "renewcerts"}).json()["tasks"]}
    berth.install(location, domain=DASH_DOMAIN)
    deadline = time.time() + 30
    while True:
        running = [t for t in berth.api.get("/tasks", params={"type": "renewcerts"}).json()["tasks"]
                   if t["id"] not in known and (t["active"] or t["pending"])]
        if running:
            break
        assert time.time() < deadline, "no renewal started"
        time.sleep(0.1)
    r = berth.api.post("/cloudron/renew_certs", json={})
    assert r.status_code == 409 and "already" in r.json()["message"], r.text
    berth.wait_task(running[0]["id"], timeout=120)
    r = berth.api.post("/cloudron/renew_certs", json={})
    assert r.status_code == 202, r.text
    berth.wait_task(r.json()["taskId"], timeout=120)


def user_cert_path(berth, host):
    return os.path.join(berth.data_dir, "certs", f"user_{host}.cert")


def test_uploaded_certificate_is_deleted_on_uninstall(berth):
    app = berth.install(unique("own"))
    host = app["fqdn"]
    cert, key = make_cert([host], days=60)
    task = berth.run(berth.api.post(f"/apps/{app['id']}/configure/cert",
                                    json={"domain": app["domain"], "subdomain": app["location"],
                                          "cert": cert, "key": key}))
    assert task["success"], task
    assert os.path.exists(user_cert_path(berth, host))
    assert berth.run(berth.api.post(f"/apps/{app['id']}/uninstall"))["success"]
    assert not os.path.exists(user_cert_path(berth, host))
    assert not os.path.exists(user_cert_path(berth, host)[:-5] + ".key")


def set_renewal_schedule(berth, pattern):
    """Change the renewal check's schedule in the server's database (picked up within 2 s)."""
    from models import database, open_database
    from tasks import schedules
    open_database("sqlite:///" + os.path.join(berth.data_dir, "berth.db"))
    try:
        schedules.save("acme-renewal", pattern, "certs.renewal_check")
    finally:
        database.close()


def test_uploaded_certificate_about_to_end_notifies_once_a_day(berth):
    app = berth.install(unique("ending"))
    host = app["fqdn"]
    cert, key = make_cert([host], days=5)
    task = berth.run(berth.api.post(f"/apps/{app['id']}/configure/cert",
                                    json={"domain": app["domain"], "subdomain": app["location"],
                                          "cert": cert, "key": key}))
    assert task["success"], task

    def notes():
        found = berth.api.get("/notifications", params={"per_page": 100}).json()["notifications"]
        return [n for n in found if n["title"] == f"Certificate for {host} expires soon"]

    set_renewal_schedule(berth, "* * * * * *")
    try:
        deadline = time.time() + 20
        while not notes():
            assert time.time() < deadline, "no notification for the ending certificate"
            time.sleep(0.25)
        time.sleep(3)                       # three more checks: still one notification
    finally:
        set_renewal_schedule(berth, "0 17 * * * *")
    found = notes()
    assert len(found) == 1, found
    assert "uploaded" in found[0]["message"] and "not renewed automatically" in found[0]["message"]
    assert berth.run(berth.api.post(f"/apps/{app['id']}/uninstall"))["success"]
