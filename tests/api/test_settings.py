"""Platform settings through the HTTP API (SQLite and PostgreSQL)."""


def test_time_zone(owner):
    assert owner.get("/settings/time_zone").status_code == 200
    r = owner.post("/settings/time_zone", json={"timeZone": "Mars/Olympus"})
    assert r.status_code == 400 and r.json()["message"].startswith("timeZone:")
    assert owner.post("/settings/time_zone", json={"timeZone": "Europe/Berlin"}).status_code == 200
    assert owner.get("/settings/time_zone").json() == {"timeZone": "Europe/Berlin"}
    assert owner.post("/settings/time_zone", json={"timeZone": "UTC"}).status_code == 200  # shared server


def test_cloudron_name_shows_in_status_and_config(owner):
    assert owner.post("/settings/cloudron_name", json={"name": "  "}).status_code == 400
    assert owner.post("/settings/cloudron_name", json={"name": "Harbour"}).status_code == 202
    assert owner.get("/settings/cloudron_name").json() == {"name": "Harbour"}
    assert owner.get("/cloudron/status").json()["cloudronName"] == "Harbour"
    assert owner.get("/config").json()["cloudronName"] == "Harbour"


def test_update_patterns(owner):
    assert owner.get("/settings/box_autoupdate_pattern").json() == {"pattern": "never"}
    for route in ("app_autoupdate_pattern", "box_autoupdate_pattern", "autoupdate_pattern"):
        bad = owner.post(f"/settings/{route}", json={"pattern": "61 * * * * *"})
        assert bad.status_code == 400 and bad.json()["message"].startswith("pattern:"), bad.text
    assert owner.post("/settings/box_autoupdate_pattern", json={"pattern": "00 00 4 * * 1"}).status_code == 200
    assert owner.get("/settings/box_autoupdate_pattern").json() == {"pattern": "00 00 4 * * 1"}
    assert owner.post("/settings/autoupdate_pattern", json={"pattern": "never"}).status_code == 200
    assert owner.get("/settings/app_autoupdate_pattern").json() == {"pattern": "never"}


def test_flags(owner):
    assert owner.get("/settings/unstable_apps").json() == {"enabled": False}
    assert owner.post("/settings/unstable_apps", json={"enabled": True}).status_code == 200
    assert owner.get("/settings/unstable_apps").json() == {"enabled": True}
    assert owner.post("/settings/language", json={"language": "de"}).status_code == 200
    assert owner.get("/settings/language").json() == {"language": "de"}
