import datetime as dt
import itertools
import tracemalloc
from zoneinfo import ZoneInfo

import pendulum
import pytest
from hypothesis import given
from hypothesis import strategies as st

from voiceapi_async import Report, Window, plan_windows, split_window
from voiceapi_async._windows import (
    FIRST_DAY,
    LAST_DAY,
    first_outside,
    localize,
    plan_range,
    resolve_timezone,
    wall_time,
)

ZONES = ["UTC", "Asia/Kolkata", "America/New_York"]


def test_dates_plan_one_whole_day_window_each() -> None:
    """Two dates give one window per day, midnight to 23:59:59, inclusive."""
    windows = plan_windows("calls", dt.date(2024, 2, 28), dt.date(2024, 3, 1), "Asia/Kolkata")
    assert [w.key for w in windows] == ["calls/2024-02-28", "calls/2024-02-29", "calls/2024-03-01"]
    assert all(w.is_whole_day for w in windows)
    assert windows[0].start == pendulum.datetime(2024, 2, 28, tz="Asia/Kolkata")
    assert windows[-1].end == pendulum.datetime(2024, 3, 1, 23, 59, 59, tz="Asia/Kolkata")


def test_iso_date_strings_are_dates() -> None:
    """ISO date strings plan exactly like dates; a single day is one window."""
    assert plan_windows(Report.RECORDINGS, "2024-01-31", "2024-01-31", "UTC") == plan_windows(
        Report.RECORDINGS, dt.date(2024, 1, 31), dt.date(2024, 1, 31), "UTC"
    )
    assert len(plan_windows("recordings", "2024-01-31", "2024-01-31", "UTC")) == 1


def test_aware_datetimes_are_exact_to_the_second_in_the_account_zone() -> None:
    """Aware bounds are converted to the account zone; partial first and last days."""
    start = dt.datetime(2024, 3, 5, 4, 30, 15, 999, tzinfo=dt.UTC)  # 10:00:15 in Kolkata
    end = "2024-03-06T12:00:00+05:30"
    windows = plan_windows("calls", start, end, ZoneInfo("Asia/Kolkata"))
    assert [(w.start.isoformat(), w.end.isoformat()) for w in windows] == [
        ("2024-03-05T10:00:15+05:30", "2024-03-05T23:59:59+05:30"),
        ("2024-03-06T00:00:00+05:30", "2024-03-06T12:00:00+05:30"),
    ]
    assert not windows[0].is_whole_day
    assert windows[0].key == "calls/2024-03-05T10:00:15--2024-03-05T23:59:59"
    assert str(windows[1]) == windows[1].key


def test_a_naive_datetime_is_a_type_error_that_says_how_to_fix_it() -> None:
    """Naive datetimes are ambiguous; the message shows how to attach a zone."""
    with pytest.raises(TypeError, match=r"naive datetime.*tzinfo=ZoneInfo"):
        plan_windows("calls", dt.datetime(2024, 1, 1), dt.date(2024, 1, 2), "UTC")
    with pytest.raises(TypeError, match="end="):
        plan_windows("calls", "2024-01-01", "2024-01-02T10:00:00", "UTC")


def test_end_before_start_is_a_value_error() -> None:
    """An end before the start is refused, naming both."""
    with pytest.raises(ValueError, match=r"end \(2024-01-01 23:59:59\) is before start"):
        plan_windows("calls", "2024-01-02", "2024-01-01", "UTC")


@pytest.mark.parametrize(
    ("value", "error", "needle"),
    [
        ("01/02/2024", ValueError, "not an ISO 8601"),
        (20240101, TypeError, "not int"),
    ],
)
def test_bad_bounds_are_explained(value: object, error: type[Exception], needle: str) -> None:
    """Slashed dates and numbers are refused with the expected form."""
    with pytest.raises(error, match=needle):
        plan_windows("calls", value, "2024-01-02", "UTC")  # type: ignore[arg-type]


def test_unknown_report_and_zone_are_refused() -> None:
    """A report that does not exist and an unknown zone are ValueErrors."""
    with pytest.raises(ValueError, match="'sms'"):
        plan_windows("sms", "2024-01-01", "2024-01-01", "UTC")
    with pytest.raises(ValueError, match="unknown time zone"):
        plan_windows("calls", "2024-01-01", "2024-01-01", "Nowhere/City")
    with pytest.raises(TypeError, match="IANA name or a tzinfo"):
        resolve_timezone(5.5)  # type: ignore[arg-type]


def test_fixed_offset_tzinfo_is_accepted() -> None:
    """A fixed-offset tzinfo works as the account zone."""
    zone = resolve_timezone(dt.timezone(dt.timedelta(hours=5, minutes=30)))
    assert zone.utcoffset(None) == dt.timedelta(hours=5, minutes=30)
    assert resolve_timezone(zone) is zone


def test_dst_days_are_planned_in_wall_time() -> None:
    """Across New York's spring and autumn changes, days still meet at midnight."""
    windows = plan_windows("calls", "2024-03-09", "2024-11-04", "America/New_York")
    assert len(windows) == 241
    for before, after in itertools.pairwise(windows):
        assert wall_time(after.start) - wall_time(before.end) == dt.timedelta(seconds=1)
    spring = next(w for w in windows if w.key == "calls/2024-03-10")
    assert spring.start.utcoffset() == dt.timedelta(hours=-5)
    assert spring.end.utcoffset() == dt.timedelta(hours=-4)


def test_split_window_into_equal_contiguous_parts() -> None:
    """A day splits into parts that meet exactly; parts are never below a second."""
    (day,) = plan_windows("calls", "2024-03-05", "2024-03-05", "Asia/Kolkata")
    parts = split_window(day, 4)
    assert [p.key for p in parts] == [
        "calls/2024-03-05T00:00:00--2024-03-05T05:59:59",
        "calls/2024-03-05T06:00:00--2024-03-05T11:59:59",
        "calls/2024-03-05T12:00:00--2024-03-05T17:59:59",
        "calls/2024-03-05T18:00:00--2024-03-05T23:59:59",
    ]
    tiny = Window(day.report, day.start, day.start.add(seconds=2))
    assert len(split_window(tiny, 10)) == 3
    assert split_window(day, 1) == [day]
    with pytest.raises(ValueError, match="at least 1"):
        split_window(day, 0)


moments = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2030, 12, 31))


@pytest.mark.parametrize("zone", ZONES)
@given(a=moments, b=moments, parts=st.integers(1, 30))
def test_windows_cover_any_range_exactly_once(
    zone: str, a: dt.datetime, b: dt.datetime, parts: int
) -> None:
    """Planned and split windows tile the range in wall time: no gap, no overlap."""
    lo, hi = sorted((a, b))
    hi = min(hi, lo + dt.timedelta(days=40))
    tz = ZoneInfo(zone)
    windows = plan_windows("calls", lo.replace(tzinfo=tz), hi.replace(tzinfo=tz), zone)
    expect_lo = wall_time(pendulum.instance(lo.replace(tzinfo=tz)).in_timezone(zone))
    expect_hi = wall_time(pendulum.instance(hi.replace(tzinfo=tz)).in_timezone(zone))
    pieces = [piece for window in windows for piece in split_window(window, parts)]
    assert wall_time(pieces[0].start) == expect_lo
    assert wall_time(pieces[-1].end) == expect_hi
    for before, after in itertools.pairwise(pieces):
        assert wall_time(after.start) - wall_time(before.end) == dt.timedelta(seconds=1)
    for piece in pieces:
        assert wall_time(piece.start) <= wall_time(piece.end)
        assert piece.start.date() == piece.end.date()


def test_first_outside_judges_both_ends_inclusively_to_the_second() -> None:
    """The day's first and last seconds belong to it; a second either side does not."""
    (day,) = plan_windows("calls", "2024-03-05", "2024-03-05", "Asia/Kolkata")
    tz = day.start.tzinfo
    inside = [day.start, day.end, day.end + dt.timedelta(milliseconds=999), None]
    assert first_outside(day, inside) is None
    assert first_outside(day, []) is None
    assert first_outside(day, [None, day.start - dt.timedelta(seconds=1)]) == 1
    assert first_outside(day, [day.start, day.end + dt.timedelta(seconds=1)]) == 1
    utc_midnight = dt.datetime(2024, 3, 5, tzinfo=dt.UTC)  # 05:30 in Kolkata: inside
    assert first_outside(day, [utc_midnight.astimezone(tz)]) is None
    assert first_outside(day, [utc_midnight - dt.timedelta(hours=6)]) == 0


@pytest.mark.parametrize(
    ("start", "end", "named"),
    [
        ("9999-12-31", "9999-12-31", "start='9999-12-31'"),
        ("2024-01-01", "9999-12-31", "end='9999-12-31'"),
        ("0001-01-01", "2024-01-01", "start='0001-01-01'"),
        (dt.date.min, dt.date(2024, 1, 1), "start='0001-01-01'"),
        ("2024-01-01", dt.date.max, "end='9999-12-31'"),
    ],
)
def test_days_the_planner_cannot_represent_are_value_errors(
    start: object, end: object, named: str
) -> None:
    """Year 9999's last day or year 1's first is a ValueError naming it and the range."""
    with pytest.raises(ValueError, match="outside the dates the planner supports") as caught:
        plan_windows("calls", start, end, "Asia/Kolkata")  # type: ignore[arg-type]
    assert named in str(caught.value)
    assert "the supported range is 0001-01-02 to 9999-12-30" in str(caught.value)


@pytest.mark.parametrize(
    ("value", "named"),
    [
        (dt.datetime.max.replace(tzinfo=dt.UTC), "(it falls outside the calendar there)"),
        ("9999-12-30T23:00:00-05:00", "(it is 9999-12-31 there)"),
        (dt.datetime(1, 1, 1, 2, tzinfo=dt.timezone(dt.timedelta(hours=3))), "outside the cal"),
    ],
)
def test_aware_bounds_that_leave_the_calendar_in_the_account_zone_are_value_errors(
    value: object, named: str
) -> None:
    """An aware datetime whose conversion to the account zone overflows is a ValueError."""
    with pytest.raises(ValueError, match="the supported range is") as caught:
        plan_windows("calls", "2024-01-01", value, "Asia/Kolkata")  # type: ignore[arg-type]
    assert named in str(caught.value)
    with pytest.raises(ValueError, match="the supported range is"):
        plan_windows("calls", value, "9999-12-30", "Asia/Kolkata")  # type: ignore[arg-type]


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Etc/GMT+12", "America/New_York"])
def test_the_first_and_last_supported_days_plan_and_convert(zone: str) -> None:
    """The edge days plan one window each, which converts to UTC and steps by a second."""
    (first,) = plan_windows("calls", FIRST_DAY, FIRST_DAY, zone)
    (last,) = plan_windows("calls", LAST_DAY.isoformat(), LAST_DAY.isoformat(), zone)
    assert first.key == "calls/0001-01-02"
    assert last.key == "calls/9999-12-30"
    for window in (first, last):
        assert window.start.in_timezone("UTC") <= window.end.in_timezone("UTC")
        assert split_window(window, 86_400)[-1].end.add(seconds=1).date() > window.start.date()


def test_a_range_longer_than_max_days_is_refused_naming_length_and_limit() -> None:
    """max_days=31 takes 31 days and refuses 32, naming both numbers and the setting."""
    assert len(plan_windows("calls", "2024-01-01", "2024-01-31", "UTC", max_days=31)) == 31
    with pytest.raises(ValueError, match="more than the limit") as caught:
        plan_windows("calls", "2024-01-01", "2024-02-01", "UTC", max_days=31)
    assert str(caught.value) == (
        "the range 2024-01-01..2024-02-01 covers 32 days, more than the limit of 31 days "
        "(max_days): ask for a shorter range, or raise the limit"
    )
    with pytest.raises(
        ValueError, match=r"covers 3,651,329 days, more than the limit of 3,660 days"
    ):
        plan_range("calls", "0002-01-01", "9998-12-31", "UTC", max_days=3660)
    with pytest.raises(ValueError, match=r"\(VOICEAPI_MAX_DAYS\)"):
        plan_range(
            "calls", "2024-01-01", "2024-01-02", "UTC", max_days=1, setting="VOICEAPI_MAX_DAYS"
        )


def test_a_plan_costs_the_same_for_a_millennium_as_for_a_day() -> None:
    """Planning 0001..9999 allocates a few kilobytes: windows are made as they are taken."""
    tracemalloc.start()
    try:
        plan = plan_range("calls", FIRST_DAY, LAST_DAY, "Asia/Kolkata")
        first_two = list(itertools.islice(plan, 2))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024
    assert len(plan) == plan.days == (LAST_DAY - FIRST_DAY).days + 1
    assert first_two == plan_windows("calls", "0001-01-02", "0001-01-03", "Asia/Kolkata")
    assert plan.start == first_two[0].start
    assert plan.end == pendulum.datetime(9999, 12, 30, 23, 59, 59, tz="Asia/Kolkata")


def test_a_lazy_plan_yields_exactly_the_planned_windows() -> None:
    """Iterating a plan gives plan_windows' list, partial first and last days included."""
    start = "2024-03-09T10:00:00-05:00"
    end = "2024-03-12T08:30:00-04:00"
    plan = plan_range("recordings", start, end, "America/New_York")
    windows = plan_windows("recordings", start, end, "America/New_York")
    assert list(plan) == list(plan) == windows
    assert len(plan) == len(windows) == 4
    assert (plan.start, plan.end) == (windows[0].start, windows[-1].end)


@pytest.mark.parametrize(
    ("zone", "day"),
    [
        ("America/New_York", "2024-11-03"),
        ("America/New_York", "2024-03-10"),
        ("Europe/London", "2024-10-27"),
        ("Australia/Lord_Howe", "2024-04-07"),
    ],
)
@pytest.mark.parametrize("parts", [1, 16, 24, 96])
def test_first_outside_judges_wall_times_on_daylight_saving_days(
    zone: str, day: str, parts: int
) -> None:
    """Every wall time of a part is inside it on DST days, in whichever fold it is given."""
    (window,) = plan_windows("calls", day, day, zone)
    tz = resolve_timezone(zone)
    for piece in split_window(window, parts):
        lo, hi = wall_time(piece.start), wall_time(piece.end)
        walls = [lo, wall_time(lo + (hi - lo) / 2), hi]
        times = [localize(wall, tz) for wall in walls]  # as the converter reads wire times
        for wall in walls:
            for fold in (0, 1):
                aware = wall.replace(tzinfo=ZoneInfo(zone), fold=fold)
                if aware.astimezone(dt.UTC).astimezone(ZoneInfo(zone)).replace(tzinfo=None) == wall:
                    times.append(pendulum.instance(aware).in_timezone(tz))  # an existing time
        assert first_outside(piece, times) is None, piece.key
        before = localize(lo - dt.timedelta(seconds=1), tz)
        after = localize(hi + dt.timedelta(seconds=1), tz)
        assert first_outside(piece, [before]) == 0
        assert first_outside(piece, [times[0], after]) == 1


@pytest.mark.parametrize("text", ["20240305", "2024-W10-2", "2024W102"])
def test_iso_dates_in_their_other_forms_are_whole_days(text: str) -> None:
    """Basic and week-date forms of 2024-03-05 plan that day, not a 'naive datetime' error."""
    (window,) = plan_windows("calls", text, text, "Asia/Kolkata")
    assert window.key == "calls/2024-03-05"


def test_an_iso_string_without_an_offset_says_how_to_write_one() -> None:
    """A CLI or web user typing a datetime without offset is shown the string to type."""
    with pytest.raises(TypeError, match=r"start='2024-03-05T10:00' has no UTC offset") as caught:
        plan_windows("calls", "2024-03-05T10:00", "2024-03-06", "UTC")
    assert "'2024-03-05T10:00:00+05:30'" in str(caught.value)
    assert "'2024-03-05')" in str(caught.value)
