"""apps.reconcile.vhost_specs (finding 13): an app row that cannot become a vhost is left out and
reported, and every other app still gets its vhost."""
DOMAIN = "example.test"  # the domain of the db fixture (conftest.py)


def test_damaged_rows_are_skipped_and_reported_the_others_kept(make_app):
    from apps import reconcile
    from models import Event
    good = make_app("good", host_port=4321)
    stopped = make_app("stopped", host_port=4322, run_state="stopped",
                       alternate_domains=[{"domain": DOMAIN, "subdomain": "alias"}])
    bad = [
        make_app("bad1", alternate_domains=[{"domain": DOMAIN, "subdomain": "x y;} include /etc"}]),
        make_app("bad2", redirect_domains=[{"domain": "gone.test", "subdomain": "r"}]),
        make_app("bad3", alternate_domains=["not an object"]),
        make_app("BAD LOCATION"),
    ]
    specs = reconcile.vhost_specs([good, *bad, stopped])
    assert [(s["app_id"], s["fqdn"], s["state"], s["aliases"]) for s in specs] == [
        (good.id, f"good.{DOMAIN}", "running", []), (stopped.id, f"stopped.{DOMAIN}", "stopped", [f"alias.{DOMAIN}"])]
    reported = {e.data["appId"] for e in Event.select().where(Event.action == "app.reconcile_skipped")}
    assert reported == {app.id for app in bad}


def test_a_name_claimed_twice_keeps_the_first_app(make_app):
    from apps import reconcile
    first = make_app("first", host_port=4321)
    second = make_app("second", host_port=4322, alternate_domains=[{"domain": DOMAIN, "subdomain": "first"}])
    assert [s["app_id"] for s in reconcile.vhost_specs([first, second])] == [first.id]


def test_a_damaged_row_keeps_the_vhost_it_has(make_app):
    from apps import reconcile
    from models import Event
    app = make_app("web", host_port=4321, alternate_domains=[{"domain": DOMAIN, "subdomain": "a b"}])
    current = {app.id: {"app_id": app.id, "fqdn": f"web.{DOMAIN}", "upstream_port": 4321, "aliases": [],
                        "redirects": [], "state": "running"}}
    assert reconcile.vhost_specs([app], current) == [current[app.id]]
    event = Event.get(Event.action == "app.reconcile_skipped")
    assert event.data["appId"] == app.id and event.data["keptVhost"] is True
    assert "a b.example.test" in event.data["message"]
