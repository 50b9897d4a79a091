"""`target`, `from` and `until` of /cloudron/graphs: what is accepted, and 400s naming the field."""
import datetime

import pytest

from core.errors import BadRequest
from system_monitor.graph_query import parse_range, parse_target, parse_targets, parse_time

NOW = 1_800_000_000.7


def test_targets_name_a_metric_of_the_system_or_of_an_app():
    assert parse_target("cpu").scope == "system" and parse_target("cpu").columns == ("cpu",)
    assert parse_target("system.network").columns == ("net_rx", "net_tx")
    target = parse_target("app.0b9c-42.disk.write")
    assert (target.name, target.scope, target.columns) == ("app.0b9c-42.disk.write", "0b9c-42", ("disk_write",))
    assert parse_target("system.disk.used").columns == ("disk_used",)
    assert [t.name for t in parse_targets("memory")] == ["memory"]  # a single value is one target


@pytest.mark.parametrize("text", ["", "load", "system.", "app..cpu", "app.x/y.cpu", "app.abc", "app.abc.disk.used",
                                  "collectd.localhost.memory.memory-used", "app.abc.cpu.extra"])
def test_bad_targets_are_refused_naming_the_field(text):
    with pytest.raises(BadRequest) as e:
        parse_target(text)
    assert e.value.field == "target"


def test_target_count_is_bounded():
    with pytest.raises(BadRequest) as e:
        parse_targets([])
    assert e.value.field == "target"
    with pytest.raises(BadRequest):
        parse_targets(["cpu"] * 21)
    assert len(parse_targets(["cpu"] * 20)) == 20


@pytest.mark.parametrize(("text", "expected"), [
    ("now", 1_800_000_000), ("-24h", 1_800_000_000 - 86400), ("-24hours", 1_800_000_000 - 86400),
    ("-30min", 1_800_000_000 - 1800), ("-7d", 1_800_000_000 - 7 * 86400), ("-1w", 1_800_000_000 - 604800),
    ("-1mon", 1_800_000_000 - 30 * 86400), ("-90s", 1_800_000_000 - 90), ("1700000000", 1_700_000_000),
    ("2027-01-15T08:00:00Z", 1_800_000_000), ("2027-01-15T09:00:00+01:00", 1_800_000_000),
    ("2027-01-15 08:00", 1_800_000_000),
])
def test_times_in_graphite_and_iso_forms(text, expected):
    assert parse_time(text, NOW, "from", "-24h") == expected


def test_defaults_are_the_last_day():
    assert parse_range(None, None, NOW) == (1_800_000_000 - 86400, 1_800_000_000)
    assert parse_range("", " ", NOW) == (1_800_000_000 - 86400, 1_800_000_000)


@pytest.mark.parametrize(("start", "until", "field"), [
    ("yesterday", None, "from"), ("-3fortnights", None, "from"), ("-h", None, "from"),
    (None, "tomorrow", "until"), ("now", "-1h", "from"), ("-1h", "-1h", "from"),
])
def test_bad_times_are_refused_naming_the_field(start, until, field):
    with pytest.raises(BadRequest) as e:
        parse_range(start, until, NOW)
    assert e.value.field == field
    assert e.value.message.startswith(f"{field}: ")


def test_iso_time_without_zone_is_utc():
    expected = int(datetime.datetime(2027, 1, 15, tzinfo=datetime.timezone.utc).timestamp())
    assert parse_time("2027-01-15", NOW, "until", "now") == expected
