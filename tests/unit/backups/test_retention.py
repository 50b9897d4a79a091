"""The retention rule (backups.retention.plan) on plain rows: no database, no clock."""
import dataclasses
import datetime

from backups import retention

NOW = datetime.datetime(2024, 6, 1, 12, 0, 0)
DAY = 86400
WEEK = 7 * DAY


@dataclasses.dataclass
class Row:
    id: str
    type: str = "box"
    app_id: str | None = None
    state: str = "normal"
    age_days: float = 0
    preserve_secs: int = 0
    depends_on: list = dataclasses.field(default_factory=list)

    @property
    def creation_time(self):
        return NOW - datetime.timedelta(days=self.age_days)


def box(id, age_days, depends_on=(), **kw):
    return Row(id, "box", None, age_days=age_days, depends_on=list(depends_on), **kw)


def app(id, app_id, age_days, **kw):
    return Row(id, "app", app_id, age_days=age_days, **kw)


def ids(rows):
    return [r.id for r in rows]


def test_nothing_to_plan():
    assert retention.plan([], WEEK, NOW) == ([], [])


def test_box_backups_older_than_retention_go_but_the_newest_always_stays():
    rows = [box("b-old", 10), box("b-mid", 8), box("b-new", 9.5)]
    keep, remove = retention.plan(rows, WEEK, NOW)
    assert ids(keep) == ["b-mid"]                 # the newest, although older than a week
    assert ids(remove) == ["b-new", "b-old"]      # newest first
    keep, remove = retention.plan([box("b1", 1), box("b2", 6.9), box("b3", 7.1)], WEEK, NOW)
    assert (ids(keep), ids(remove)) == (["b1", "b2"], ["b3"])


def test_negative_retention_keeps_every_good_backup():
    rows = [box("b1", 400), box("b2", 900, depends_on=["a1"]), app("a1", "x", 900), app("a2", "x", 950)]
    keep, remove = retention.plan(rows, -1, NOW)
    assert ids(keep) == ["b1", "b2", "a1", "a2"] and remove == []


def test_zero_retention_keeps_only_the_newest_and_what_it_needs():
    rows = [box("b-new", 0.01, depends_on=["a-needed"]), box("b-old", 1, depends_on=["a-old"]),
            app("a-alone", "x", 0.001), app("a-needed", "x", 0.02), app("a-old", "x", 1)]
    keep, remove = retention.plan(rows, 0, NOW)
    assert ids(keep) == ["a-alone", "b-new", "a-needed"]   # newest first, whatever the type
    assert ids(remove) == ["b-old", "a-old"]


def test_an_app_backup_a_kept_box_backup_depends_on_stays_however_old():
    rows = [box("b1", 1, depends_on=["a-ancient"]), app("a-newer", "x", 0.5), app("a-ancient", "x", 300)]
    keep, remove = retention.plan(rows, WEEK, NOW)
    assert ids(keep) == ["a-newer", "b1", "a-ancient"] and remove == []
    # Once that box backup goes, so does the old app backup it held.
    rows = [box("b2", 0.1), box("b1", 30, depends_on=["a-ancient"]), app("a-newer", "x", 0.5),
            app("a-ancient", "x", 300)]
    keep, remove = retention.plan(rows, WEEK, NOW)
    assert (ids(keep), ids(remove)) == (["b2", "a-newer"], ["b1", "a-ancient"])


def test_each_apps_newest_backup_stays():
    rows = [app("x-new", "x", 20), app("x-old", "x", 30), app("y-only", "y", 400)]
    keep, remove = retention.plan(rows, WEEK, NOW)
    assert (ids(keep), ids(remove)) == (["x-new", "y-only"], ["x-old"])


def test_preserve_secs_outlasts_retention():
    rows = [box("b-new", 0), box("b-kept", 20, preserve_secs=30 * DAY), box("b-gone", 20, preserve_secs=10 * DAY),
            app("a-new", "x", 0), app("a-kept", "x", 20, preserve_secs=30 * DAY)]
    keep, remove = retention.plan(rows, WEEK, NOW)
    assert ids(keep) == ["b-new", "a-new", "b-kept", "a-kept"]
    assert ids(remove) == ["b-gone"]


def test_failed_backups_go_and_unfinished_ones_are_never_touched():
    rows = [box("b-creating", 100, state="creating"), box("b-error", 0, state="error"),
            app("a-error", "x", 0, state="error"), app("a-creating", "x", 100, state="creating"),
            box("b-good", 50)]
    keep, remove = retention.plan(rows, WEEK, NOW)
    assert ids(keep) == ["b-good"]
    assert ids(remove) == ["b-error", "a-error"]


def test_a_failed_box_backup_is_not_the_newest_and_holds_nothing():
    rows = [box("b-error", 0, state="error", depends_on=["a-old"]), box("b-good", 30),
            app("a-new", "x", 0.5), app("a-old", "x", 40)]
    keep, remove = retention.plan(rows, WEEK, NOW)
    assert ids(keep) == ["a-new", "b-good"]
    assert ids(remove) == ["b-error", "a-old"]


def test_equal_times_are_ordered_by_id():
    rows = [box("2024/b", 10), box("2024/a", 10)]
    keep, remove = retention.plan(rows, WEEK, NOW)
    assert (ids(keep), ids(remove)) == (["2024/b"], ["2024/a"])
