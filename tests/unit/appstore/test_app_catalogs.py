"""The app catalogs (appstore.catalog, appstore.settings) and the support rules (appstore.support)
on files in a temporary folder and a local HTTP server."""
import base64
import json

import pytest

from appstore import catalog, settings, support
from core import config
from core.errors import BadRequest, DependencyFailed, NotFound
from eventlog import SYSTEM
from models import Setting
from support.static_http import served

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32


def write(path, apps):
    path.write_text(json.dumps({"apps": apps}))
    return str(path)


def app(id, version, **fields):
    return {"id": id, "version": version, "title": fields.pop("title", id), **fields}




def test_no_catalog_configured_is_not_found(db):
    with pytest.raises(NotFound, match="No app catalog is configured"):
        catalog.list_apps()


def test_first_catalog_wins_for_an_app_id_and_versions_stay_together(db, tmp_path):
    first = write(tmp_path / "first.json", [app("io.a", "1.0.0", dockerImage="first/a:1"),
                                             app("io.a", "1.2.0", dockerImage="first/a:2")])
    second = write(tmp_path / "second.json", [app("io.a", "9.0.0", dockerImage="evil/a"),
                                               app("io.b", "2.0.0", title="Bravo", tags=["wiki"])])
    Setting.put(catalog.SETTING, f"{first}, {second}")
    listed = {e["id"]: e for e in catalog.list_apps()}
    assert listed["io.a"]["version"] == "1.2.0" and listed["io.b"]["version"] == "2.0.0"
    assert catalog.get_app("io.a")["versions"] == ["1.0.0", "1.2.0"]
    with pytest.raises(NotFound):
        catalog.get_app_version("io.a", "9.0.0")     # the second catalog cannot add versions of io.a
    assert catalog.resolve("io.a") == ("io.a@1.2.0", listed["io.a"]["manifest"])
    assert catalog.resolve("io.a@1.0.0")[1]["dockerImage"] == "first/a:1"
    assert catalog.get_app_version("io.b", "latest")["version"] == "2.0.0"


def test_search_matches_title_description_and_tags_case_insensitively(db, tmp_path):
    source = write(tmp_path / "c.json", [app("io.x", "1.0.0", title="Xylophone"),
                                          app("io.y", "1.0.0", description="A WIKI engine"),
                                          app("io.z", "1.0.0", tags=["Chat"])])
    Setting.put(catalog.SETTING, source)
    assert [e["id"] for e in catalog.list_apps("wiki")] == ["io.y"]
    assert [e["id"] for e in catalog.list_apps("chat")] == ["io.z"]
    assert [e["id"] for e in catalog.list_apps("XYLO")] == ["io.x"]
    assert len(catalog.list_apps("  ")) == 3


def test_icons_are_served_as_data_from_the_catalog_folder_only(db, tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "logo.png").write_bytes(PNG)
    (tmp_path / "secret.png").write_bytes(PNG)
    source = write(tmp_path / "cat" / "c.json", [app("io.i", "1.0.0", icon="file://logo.png"),
                                                  app("io.j", "1.0.0", icon="../secret.png"),
                                                  app("io.k", "1.0.0", iconUrl="https://icons.example/k.png")])
    Setting.put(catalog.SETTING, source)
    icons = {e["id"]: e["iconUrl"] for e in catalog.list_apps()}
    assert icons["io.i"] == "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert icons["io.j"] is None
    assert icons["io.k"] == "https://icons.example/k.png"


def test_url_catalog_and_its_relative_icons(db, tmp_path):
    write(tmp_path / "c.json", [app("io.u", "1.0.0", icon="icons/u.png")])
    with served(tmp_path) as base:
        Setting.put(catalog.SETTING, f"{base}/c.json")
        assert catalog.get_app("io.u")["iconUrl"] == f"{base}/icons/u.png"
        Setting.put(catalog.SETTING, f"{base}/missing.json")
        with pytest.raises(DependencyFailed, match="missing.json"):
            catalog.list_apps()


def test_the_run_time_setting_replaces_the_environment_list(db, tmp_path):
    env_source = write(tmp_path / "env.json", [app("io.env", "1.0.0")])
    run_source = write(tmp_path / "run.json", [app("io.run", "1.0.0")])
    config.use(config.load({"BERTH_DATA_DIR": str(db), "BERTH_APP_CATALOG": env_source}))
    assert settings.get_config() == {"catalogs": [env_source], "fromEnvironment": True}
    settings.set_config(SYSTEM, {"catalogs": [run_source]})
    assert [e["id"] for e in catalog.list_apps()] == ["io.run"]
    settings.set_config(SYSTEM, {"catalogs": []})
    assert [e["id"] for e in catalog.list_apps()] == ["io.env"]


def test_unreadable_or_non_json_sources_are_refused_and_nothing_changes(db, tmp_path):
    good = write(tmp_path / "good.json", [app("io.g", "1.0.0")])
    settings.set_config(SYSTEM, {"catalogs": [good]})
    (tmp_path / "bad.json").write_text("not json")
    with pytest.raises(DependencyFailed, match="bad.json"):
        settings.set_config(SYSTEM, {"catalogs": [good, str(tmp_path / "bad.json")]})
    for refused in ("/etc/passwd", "relative.json", "ftp://x/c.json", "a.json,b.json", ""):
        with pytest.raises(BadRequest, match=r"catalogs\[0\]"):
            settings.set_config(SYSTEM, {"catalogs": [refused]})
    assert settings.get_config()["catalogs"] == [good]


def test_ticket_needs_a_support_address_and_valid_fields(db):
    with pytest.raises(DependencyFailed, match="BERTH_SUPPORT_EMAIL"):
        support.ticket({"type": "ticket", "subject": "s", "description": "d"}, "u@x.test", "U")
    assert support.get_config()["submitTickets"] is False
    config.use(config.load({"BERTH_DATA_DIR": str(db), "BERTH_SUPPORT_EMAIL": "help@ops.test"}))
    assert support.get_config() == {"email": "help@ops.test", "remoteSupport": False, "submitTickets": True,
                                    "ticketFormBody": "Tickets are sent by mail to help@ops.test."}
    with pytest.raises(BadRequest, match="type"):
        support.ticket({"type": "spam", "subject": "s", "description": "d"}, None, None)
    with pytest.raises(BadRequest, match="subject"):
        support.ticket({"type": "ticket", "subject": " ", "description": "d"}, None, None)
    to, subject, text = support.ticket({"type": "app_error", "subject": "Broken\r\nBcc: x@y", "description": "It fails",
                                        "appId": "app-1"}, "u@x.test", "User")
    assert to == "help@ops.test" and subject == "[Berth support] Broken Bcc: x@y"   # no header injection
    assert "App: app-1" in text and "It fails" in text and "u@x.test" in text


def test_remote_support_is_never_enabled(db):
    assert support.remote_support() == {"enabled": False}
    support.set_remote_support(False)
    with pytest.raises(support.FeatureDisabled) as refused:
        support.set_remote_support(True)
    assert refused.value.status == 405 and "never installs a support SSH key" in refused.value.message
