"""Cron patterns with seconds (Cloudron's node-cron format) translated for APScheduler, whose
weekdays start on Monday and which takes no seconds field in its crontab helper."""
import datetime

import pytest

from core.errors import BadRequest
from tasks import schedules

UTC = datetime.timezone.utc


def fires(pattern, start, count=3):
    trig = schedules.trigger(pattern)
    out, prev, now = [], None, start
    for _ in range(count):
        nxt = trig.get_next_fire_time(prev, now)
        out.append(nxt)
        prev, now = nxt, nxt + datetime.timedelta(microseconds=1)
    return out


@pytest.mark.parametrize("field, names", [
    ("0", "sun"), ("7", "sun"), ("1-5", "mon,tue,wed,thu,fri"), ("*/2", "sun,tue,thu,sat"),
    ("mon,wed", "mon,wed"), ("sat-7", "sun,sat"), ("*", "*"), ("?", "*"),
    ("1/3", "sun,mon,thu"),  # 1, 4, 7: and 7 is Sunday again
])
def test_weekday_field_is_translated_from_sunday_zero(field, names):
    assert schedules._weekdays(field) == names


@pytest.mark.parametrize("field", ["8", "5-1", "*/0", "funday"])
def test_bad_weekday_fields_are_refused(field):
    with pytest.raises(ValueError):
        schedules._weekdays(field)


def test_six_field_pattern_fires_on_its_second():
    start = datetime.datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)
    assert [t.second for t in fires("*/20 * * * * *", start)] == [0, 20, 40]


def test_five_field_pattern_means_second_zero():
    start = datetime.datetime(2026, 1, 1, 10, 0, 30, tzinfo=UTC)
    first = fires("30 10 * * *", start, 1)[0]
    assert (first.hour, first.minute, first.second) == (10, 30, 0)


def test_sunday_zero_fires_on_sunday():
    start = datetime.datetime(2026, 1, 1, tzinfo=UTC)            # a Thursday
    first = fires("00 00 23 * * 0", start, 1)[0]
    assert first.weekday() == 6 and first.hour == 23              # Python: Monday 0 … Sunday 6


def test_never_has_no_trigger():
    assert schedules.trigger("never") is None and schedules.trigger(" NEVER ") is None


@pytest.mark.parametrize("pattern", ["", "* * *", "61 * * * * *", "* * * * * * *", "a b c d e f"])
def test_bad_patterns_are_400_naming_pattern(pattern):
    with pytest.raises(BadRequest) as e:
        schedules.trigger(pattern)
    assert e.value.field == "pattern"
