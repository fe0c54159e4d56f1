"""Six calendar months: month ends, leap years, clock changes, and midnight in the practice's zone."""
import datetime as dt
import zoneinfo

import pytest
from hypothesis import given, settings, strategies as st

from callrec_plugin.retention import add_months, local_to_utc, retain_until_for

UTC = dt.timezone.utc
LONDON = zoneinfo.ZoneInfo("Europe/London")


def utc(*parts):
    return dt.datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize("day,months,expected", [
    (dt.date(2026, 9, 1), 6, dt.date(2027, 3, 1)),  # the call on 1 September: 1 March, not 3 March
    (dt.date(2026, 8, 31), 6, dt.date(2027, 2, 28)),  # no 31 February: the last day of the month
    (dt.date(2027, 8, 31), 6, dt.date(2028, 2, 29)),  # a leap year's last day of February
    (dt.date(2028, 2, 29), 6, dt.date(2028, 8, 29)),
    (dt.date(2028, 2, 29), 12, dt.date(2029, 2, 28)),
    (dt.date(2026, 3, 31), 6, dt.date(2026, 9, 30)),
    (dt.date(2026, 12, 31), 2, dt.date(2027, 2, 28)),
    (dt.date(2026, 7, 15), 0, dt.date(2026, 7, 15)),
    (dt.date(2026, 1, 31), -1, dt.date(2025, 12, 31)),
])
def test_add_months_keeps_the_day_or_takes_the_last_day_of_a_shorter_month(day, months, expected):
    assert add_months(day, months) == expected


def test_a_call_at_2330_utc_on_31_august_is_1_september_in_london():
    # 23:30 UTC on 31 August is 00:30 BST on 1 September: kept until 00:30 on 1 March (GMT = UTC).
    assert retain_until_for(utc(2026, 8, 31, 23, 30), months=6, zone=LONDON) == utc(2027, 3, 1, 0, 30)
    # In a practice on UTC the same call is on 31 August: kept until the last day of February.
    assert retain_until_for(utc(2026, 8, 31, 23, 30), months=6, zone=zoneinfo.ZoneInfo("UTC")) == \
        utc(2027, 2, 28, 23, 30)
    # And just after midnight in New York it is still 31 August there.
    new_york = zoneinfo.ZoneInfo("America/New_York")
    assert retain_until_for(utc(2026, 9, 1, 3, 30), months=6, zone=new_york) == utc(2027, 3, 1, 4, 30)  # 28 Feb 23:30 EST


def test_the_clocks_changing_keeps_the_wall_clock_time():
    # 10:00 GMT in January -> 10:00 BST in July (09:00 UTC)
    assert retain_until_for(utc(2026, 1, 15, 10, 0), months=6, zone=LONDON) == utc(2026, 7, 15, 9, 0)
    # 01:30 BST on 29 September 2025 -> 01:30 on 29 March 2026 does not exist (clocks go 01:00 -> 02:00 GMT->BST):
    # the first instant the clock reads 01:30 or later is the jump itself, 01:00 UTC.
    assert retain_until_for(utc(2025, 9, 29, 0, 30), months=6, zone=LONDON) == utc(2026, 3, 29, 1, 0)
    # 01:30 on 25 October 2026 happens twice (BST then GMT): the first of the two.
    assert retain_until_for(utc(2026, 4, 25, 0, 30), months=6, zone=LONDON) == utc(2026, 10, 25, 0, 30)


def test_local_to_utc_inside_a_gap_is_the_jump():
    assert local_to_utc(dt.datetime(2026, 3, 29, 1, 0), LONDON) == utc(2026, 3, 29, 1, 0)
    assert local_to_utc(dt.datetime(2026, 3, 29, 1, 59, 59), LONDON) == utc(2026, 3, 29, 1, 0)
    assert local_to_utc(dt.datetime(2026, 3, 29, 2, 0), LONDON) == utc(2026, 3, 29, 1, 0)
    assert local_to_utc(dt.datetime(2026, 3, 29, 0, 59), LONDON) == utc(2026, 3, 29, 0, 59)


ZONES = st.sampled_from(["Europe/London", "UTC", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata",
                         "America/Santiago"])
MOMENTS = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2090, 1, 1), timezones=st.just(UTC))


@settings(max_examples=500, deadline=None)
@given(MOMENTS, MOMENTS, st.integers(1, 24), ZONES)
def test_retention_is_whole_calendar_months_and_never_runs_backwards(first, second, months, zone_name):
    zone = zoneinfo.ZoneInfo(zone_name)
    early, late = sorted((first, second))
    until_early = retain_until_for(early, months=months, zone=zone)
    until_late = retain_until_for(late, months=months, zone=zone)
    assert until_early <= until_late  # a later call is never deleted first
    # The same day (or the month's last) `months` later on the practice's calendar, at the same wall time
    # unless that time does not exist that day.
    local = early.astimezone(zone)
    target = add_months(local.replace(tzinfo=None), months)
    kept = until_early.astimezone(zone).replace(tzinfo=None)
    assert kept.date() == target.date() or kept - target <= dt.timedelta(hours=2)
    assert until_early > early
    assert dt.timedelta(days=28 * months - 1) <= until_early - early <= dt.timedelta(days=31 * months + 1)


def test_each_practice_has_its_own_months_and_zone(app):
    from callrec_plugin.hooks import hookimpl
    from callrec_plugin.practice_settings import PracticeSettingsError, settings_for
    from callrec_plugin.state import get_state

    class Host:
        @hookimpl
        def callrec_practice_settings(self, practice_ref):
            return {"pB": {"retention_months": 3, "timezone": "UTC", "sampling_rate": 0.1},
                    "bad": {"retention_months": 0}}.get(practice_ref)

    get_state(app).pm.register(Host(), name="host_settings")
    with app.test_request_context():
        started = utc(2026, 8, 31, 23, 30)
        assert retain_until_for(started, "pA") == utc(2027, 3, 1, 0, 30)  # the config: 6 months, London
        assert retain_until_for(started, "pB") == utc(2026, 11, 30, 23, 30)  # the host's: 3 months, UTC
        pb = settings_for("pB")
        assert pb.grace_days == 7 and pb.tombstone_years == 6  # keys the host left out: the config's
        assert pb.get("sampling_rate") == 0.1 and pb.get("unknown", "default") == "default"
        with pytest.raises(PracticeSettingsError, match="'bad'.*retention_months"):
            settings_for("bad")
