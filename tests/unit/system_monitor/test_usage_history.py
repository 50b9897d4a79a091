"""The usage history: rates from counter samples, the roll-up of old minute rows into hours, the
pruning after a month, and the series a query reads (per minute within a day, per hour beyond)."""
import pytest

from system_monitor import history
from system_monitor.collector import pattern

HOUR, DAY = 3600, 86400
NOW = 1_800_000_000.0  # a whole hour: 2027-01-15T08:00:00Z


def test_rates_from_two_samples_of_the_machine():
    first = {"at": 100.0, "cpu_busy": 10.0, "cpu_total": 40.0, "memory": 5, "disk_used": 7,
             "disk_read": 1000, "disk_write": 0, "net_rx": 0, "net_tx": 50}
    second = {**first, "at": 110.0, "cpu_busy": 15.0, "cpu_total": 60.0, "memory": 6,
              "disk_read": 3000, "net_rx": 500, "net_tx": 50}
    assert history.sample_values(first, None) == {
        "memory": 5, "disk_used": 7, "cpu": None, "disk_read": None, "disk_write": None, "net_rx": None,
        "net_tx": None}
    values = history.sample_values(second, first)
    assert values["cpu"] == 25.0  # 5 busy seconds of 20
    assert (values["disk_read"], values["disk_write"], values["net_rx"], values["net_tx"]) == (200, 0, 50, 0)
    assert values["memory"] == 6


def test_rates_of_a_container_and_counters_that_went_backwards():
    first = {"at": 0.0, "cpu_ns": 0, "cpus": 2, "memory": 1, "net_rx": 900, "net_tx": 0, "disk_read": 0,
             "disk_write": 0}
    second = {**first, "at": 10.0, "cpu_ns": 5 * 10**9, "net_rx": 100}  # recreated: rx counter restarted
    values = history.sample_values(second, first)
    assert values["cpu"] == 25.0  # 5 CPU seconds in 10 s on 2 CPUs
    assert values["net_rx"] is None and values["net_tx"] == 0


def test_no_rate_across_a_long_gap_or_from_the_future():
    first = {"at": 0.0, "net_rx": 0}
    assert history.sample_values({"at": history.MAX_GAP + 1.0, "net_rx": 10}, first)["net_rx"] is None
    assert history.sample_values({"at": 0.0, "net_rx": 10}, {"at": 5.0, "net_rx": 0})["net_rx"] is None


class Row:
    def __init__(self, time, **values):
        self.time = time
        for column in history.COLUMNS:
            setattr(self, column, values.get(column))


def test_datapoints_average_each_step_and_fill_empty_ones_with_null():
    rows = [Row(1000, cpu=10), Row(1010, cpu=30), Row(1130, cpu=5), Row(1140, cpu=None)]
    points = history.datapoints(rows, ("cpu",), 990, 1200, 60)
    assert points == [[20.0, 960], [None, 1020], [5.0, 1080], [None, 1140], [None, 1200]]
    assert history.datapoints(rows, ("cpu",), 990, 1200, 60, fill=False) == [[20.0, 960], [5.0, 1080]]


def test_datapoints_of_a_sum_need_both_parts():
    rows = [Row(0, net_rx=1, net_tx=2), Row(60, net_rx=1)]
    assert history.datapoints(rows, ("net_rx", "net_tx"), 0, 60, 60) == [[3.0, 0], [None, 60]]


def test_resolution_is_minutes_within_a_day_and_hours_beyond():
    assert history.resolution(int(NOW - DAY), NOW) == 60
    assert history.resolution(int(NOW - DAY - 1), NOW) == 3600


@pytest.mark.parametrize(("interval", "expected"), [
    (1, "* * * * * *"), (5, "*/5 * * * * *"), (60, "0 * * * * *"), (300, "0 */5 * * * *")])
def test_schedule_pattern_of_the_interval(interval, expected):
    assert pattern(interval) == expected


def _sample(scope, at, cpu, memory):
    from models.usage import UsageSample
    return UsageSample.create(scope=scope, step=60, time=int(at), cpu=cpu, memory=memory)


def test_roll_up_turns_whole_old_hours_into_averages_and_keeps_the_last_day(db):
    from models.usage import UsageSample
    cutoff = NOW - DAY  # a whole hour
    for minute in range(180):  # three hours of minute rows ending exactly at the cutoff's hour + 1
        at = cutoff - 2 * HOUR + minute * 60
        _sample("system", at, cpu=minute % 60, memory=1000)
        _sample("app1", at, cpu=50, memory=None)
    made = history.roll_up(NOW)
    assert made == 4  # two whole hours before the cutoff, for two scopes
    hours = {(r.scope, r.time): r for r in UsageSample.select().where(UsageSample.step == 3600)}
    assert set(hours) == {(s, int(cutoff - h)) for s in ("system", "app1") for h in (2 * HOUR, HOUR)}
    assert hours[("system", int(cutoff - HOUR))].cpu == 29.5 and hours[("system", int(cutoff - HOUR))].memory == 1000
    assert hours[("app1", int(cutoff - HOUR))].memory is None  # no value stays no value
    left = UsageSample.select().where(UsageSample.step == 60)
    assert left.count() == 120 and min(r.time for r in left) == int(cutoff)  # the last day is intact
    assert history.roll_up(NOW) == 0  # nothing left to roll up


def test_hour_rows_older_than_a_month_are_pruned(db):
    from models.usage import UsageSample
    UsageSample.create(scope="system", step=3600, time=int(NOW - 30 * DAY - HOUR), cpu=1)
    UsageSample.create(scope="system", step=3600, time=int(NOW - 30 * DAY + HOUR), cpu=2)
    history.roll_up(NOW)
    assert [r.cpu for r in UsageSample.select()] == [2]


def test_series_of_a_long_range_includes_the_last_day_per_hour(db):
    from models.usage import UsageSample
    UsageSample.create(scope="system", step=3600, time=int(NOW - 3 * DAY), cpu=10)
    for minute in range(60):
        _sample("system", NOW - HOUR + minute * 60, cpu=20 if minute < 30 else 40, memory=0)
    _sample("other", NOW - 600, cpu=99, memory=0)
    week = history.series("system", ("cpu",), int(NOW - 7 * DAY), int(NOW), NOW, fill=False)
    assert week == [[10.0, int(NOW - 3 * DAY)], [30.0, int(NOW - HOUR)]]
    recent = history.series("system", ("cpu",), int(NOW - HOUR), int(NOW), NOW)
    assert len(recent) == 61 and recent[0] == [20.0, int(NOW - HOUR)] and recent[-1] == [None, int(NOW)]


def test_record_computes_rates_against_the_latest_sample_of_its_scope(db):
    history.record("system", {"at": NOW, "net_rx": 0, "memory": 1})
    history.record("app1", {"at": NOW + 5, "net_rx": 10**6, "memory": 1})
    row = history.record("system", {"at": NOW + 10, "net_rx": 1000, "memory": 2})
    assert row.net_rx == 100.0 and row.memory == 2 and row.counters["net_rx"] == 1000


def test_live_model_matches_the_migrated_table(db):
    from models import database
    from models.usage import UsageSample
    columns = {c.name for c in database.get_columns("usage_history")}
    assert {f.column_name for f in UsageSample._meta.sorted_fields} == columns
    indexes = {tuple(i.columns) for i in database.get_indexes("usage_history")}
    assert {("scope", "step", "time"), ("step", "time")} <= indexes


@pytest.mark.parametrize("value", ["0", "7", "90", "420", "x"])
def test_graphs_interval_must_tile_a_minute_or_an_hour(value):
    from core import config
    with pytest.raises(config.ConfigError, match="BERTH_GRAPHS_INTERVAL"):
        config.load({"BERTH_GRAPHS_INTERVAL": value})
    assert config.load({"BERTH_GRAPHS_INTERVAL": "15"}).graphs_interval == 15
    assert config.load({}).graphs_interval == 60
