"""The app store routes through the HTTP API of one real app server (tests/support/apps_env.py:
Docker, nginx, the test image): the catalogs (BERTH_APP_CATALOG, then a second one set at run time
with an icon), search, apps and versions, installing by appStoreId from the run-time catalog, and the
cloudron.io account routes, which answer 412 (this server has no store account). The catalog rules
themselves (precedence, icon paths, refused sources) are unit tests (tests/unit/appstore)."""
import base64
import json

import pytest

from support.apps_env import CATALOG_ID, apps_berth, unique

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
SECOND_ID = "io.berth.test.second"


@pytest.fixture(scope="module")
def store(parts, tmp_path_factory):
    with apps_berth(parts, tmp_path_factory) as env:
        yield env


@pytest.fixture(scope="module")
def second_catalog(parts, tmp_path_factory):
    """A catalog of its own folder: one app (the test image under another id) with a PNG icon."""
    folder = tmp_path_factory.mktemp("second-catalog")
    with open(parts["catalog"]) as f:
        manifest = dict(json.load(f)["apps"][0])
    manifest.update(id=SECOND_ID, version="2.0.0", title="Second catalog app", icon="file://icon.png")
    (folder / "icon.png").write_bytes(PNG)
    (folder / "catalog.json").write_text(json.dumps({"apps": [manifest]}))
    return str(folder / "catalog.json")


def test_list_search_app_and_versions(store):
    r = store.api.get("/appstore/apps")
    assert r.status_code == 200, r.text
    listed = {a["id"]: a for a in r.json()["apps"]}
    assert listed[CATALOG_ID]["version"] == "1.1.0" and listed[CATALOG_ID]["manifest"]["version"] == "1.1.0"
    assert listed[CATALOG_ID]["iconUrl"] is None
    found = store.api.get("/appstore/apps", params={"search": "TINY WEB"}).json()["apps"]
    assert [a["id"] for a in found] == [CATALOG_ID]
    assert store.api.get("/appstore/apps", params={"search": "no-such-app"}).json() == {"apps": []}

    app = store.api.get(f"/appstore/apps/{CATALOG_ID}").json()
    assert app["versions"] == ["1.0.0", "1.1.0"] and app["manifest"]["memoryLimit"] == 67108864
    version = store.api.get(f"/appstore/apps/{CATALOG_ID}/versions/1.0.0").json()
    assert version["manifest"]["version"] == "1.0.0" and "memoryLimit" not in version["manifest"]
    assert store.api.get(f"/appstore/apps/{CATALOG_ID}/versions/9.9.9").status_code == 404
    r = store.api.get("/appstore/apps/io.berth.test.nothing")
    assert r.status_code == 404 and r.json()["message"] == "No such app", r.text


def test_run_time_catalogs_serve_icons_and_install_by_app_store_id(store, parts, second_catalog):
    r = store.api.get("/settings/appstore_config")
    assert r.json() == {"catalogs": [parts["catalog"]], "fromEnvironment": True}, r.text
    # A catalog that cannot be read is refused and nothing changes.
    r = store.api.post("/settings/appstore_config", json={"catalogs": [second_catalog + ".missing.json"]})
    assert r.status_code == 424 and "missing.json" in r.json()["message"], r.text
    r = store.api.post("/settings/appstore_config", json={"catalogs": ["/etc/passwd"]})
    assert r.status_code == 400, r.text

    r = store.api.post("/settings/appstore_config", json={"catalogs": [second_catalog, parts["catalog"]]})
    assert r.status_code == 200, r.text
    assert r.json() == {"catalogs": [second_catalog, parts["catalog"]], "fromEnvironment": False}
    listed = {a["id"]: a for a in store.api.get("/appstore/apps").json()["apps"]}
    assert set(listed) == {CATALOG_ID, SECOND_ID}
    assert listed[SECOND_ID]["iconUrl"] == "data:image/png;base64," + base64.b64encode(PNG).decode()

    app = store.install(unique("second"), appStoreId=SECOND_ID)
    assert app["appStoreId"] == SECOND_ID and app["manifest"]["version"] == "2.0.0"
    assert app["health"] == "healthy"

    r = store.api.post("/settings/appstore_config", json={"catalogs": []})
    assert r.json() == {"catalogs": [parts["catalog"]], "fromEnvironment": True}, r.text
    assert store.api.get(f"/appstore/apps/{SECOND_ID}").status_code == 404


@pytest.mark.parametrize("method, path, body", [
    ("post", "/appstore/register_cloudron", {"signup": False, "email": "me@example.com", "password": "secret"}),
    ("get", "/appstore/subscription", None),
    ("post", "/appstore/user_token", None),
])
def test_store_account_routes_say_there_is_no_store_account(store, method, path, body):
    r = getattr(store.api, method)(path, **({"json": body} if body is not None else {}))
    assert r.status_code == 412, r.text
    assert "no app store account" in r.json()["message"]
