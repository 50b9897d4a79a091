"""Routes Cloudron added after the seed era that current clients call (marked `x-modern` in the
spec): /system/disk_usage and /updater/*. (POST /apps is in test_apps.py, beside the seed install.)
Also the rule every 201/204 answer follows, in the spec and in what the API tests receive."""
import os

import psutil
import pytest
import requests
import yaml

from support import status_bodies
from support.harness import ROOT

MODERN = {("get", "/system/disk_usage"), ("get", "/updater/updates"), ("post", "/updater/update"),
          ("post", "/apps")}


def _spec():
    with open(os.path.join(ROOT, "openapi.yaml")) as f:
        return yaml.safe_load(f)


def test_modern_routes_are_marked_and_admin_only():
    paths = _spec()["paths"]
    for method, path in MODERN:
        operation = paths[path][method]
        assert operation.get("x-modern") is True, (method, path)
        assert set(operation["x-roles"]) == {"owner", "admin"}, (method, path)


def test_disk_usage_reports_the_real_filesystems(owner):
    r = owner.get("/system/disk_usage")
    assert r.status_code == 200, r.text
    usage = r.json()["usage"]
    assert usage["ts"].endswith("Z")
    filesystems = usage["filesystems"]
    assert filesystems, usage
    for device, fs in filesystems.items():
        assert fs["filesystem"] == device
        assert {"available", "size", "used", "mountpoint"} <= set(fs)
        assert 0 <= fs["used"] <= fs["size"] and 0 <= fs["available"] <= fs["size"]
    # The server runs on this machine: its figures are the kernel's for the same mount point.
    root = [fs for fs in filesystems.values() if fs["mountpoint"] == "/"]
    if root:
        here = psutil.disk_usage("/")
        assert root[0]["size"] == here.total
        assert abs(root[0]["used"] - here.used) < max(here.total // 100, 64 * 1024 * 1024)


def test_updater_without_a_newer_release(owner):
    """No release feed checked: no platform part, and the platform update answers as Cloudron's
    does when there is nothing newer (tests/api/test_platform_update.py has the update itself)."""
    r = owner.get("/updater/updates")
    assert r.status_code == 200 and "box" not in r.json()["updates"], r.text
    r = owner.post("/updater/update", json=None)
    assert r.status_code == 422, r.text
    assert r.json()["status"] == "Unprocessable Entity" and r.json()["message"].startswith("No update available")
    r = owner.post("/updater/update", json={"skipBackup": True})
    assert r.status_code == 400 and r.json()["message"].startswith("skipBackup:"), r.text


# ---- 201 carries a JSON object, 204 nothing ------------------------------------------------------

def _resolve(spec, schema):
    while schema and "$ref" in schema:
        schema = spec["definitions"][schema["$ref"].split("/")[-1]]
    return schema


def test_spec_declares_an_object_for_every_201_and_no_body_for_every_204():
    spec = _spec()
    wrong = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            responses = operation.get("responses", {}) if isinstance(operation, dict) else {}
            created, empty = responses.get(201), responses.get(204)
            if created is not None and (_resolve(spec, created.get("schema")) or {}).get("type") != "object":
                wrong.append(f"{method.upper()} {path}: 201 without an object schema")
            if empty is not None and "schema" in empty:
                wrong.append(f"{method.upper()} {path}: 204 with a schema")
    assert not wrong, wrong


def _answer(status, content):
    response = requests.Response()
    response.status_code, response._content = status, content
    response.request = requests.Request("POST", "http://berth.test/api/v1/x").prepare()
    return response


@pytest.mark.parametrize("status, content", [(201, b""), (201, b"[]"), (201, b"null"), (204, b"null"),
                                             (204, b"{}")])
def test_the_answer_check_of_the_api_tests_catches_a_wrong_body(status, content):
    """tests/api/conftest.py runs this check on every answer the API tests receive."""
    with pytest.raises(AssertionError, match=f"answered {status}"):
        status_bodies.check(_answer(status, content))
    status_bodies.check(_answer(201, b'{"id": "1"}'))
    status_bodies.check(_answer(204, b""))
