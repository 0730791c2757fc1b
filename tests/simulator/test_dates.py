"""The server's reading of the date-range filter, without a server."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.simulator.conftest import DATE_PARAM, LAST_SECOND, at
from voiceapi_async import Report
from voiceapi_async.testing._dates import DATE_PARAMS, parse_range

NOW = dt.datetime(2024, 3, 5, 12, 34, 56)


def test_each_report_has_its_own_filter_parameter() -> None:
    """Calls filter by datetime[end_at] and recordings by datetime[r.created_at]."""
    assert {report.value: name for report, name in DATE_PARAMS.items()} == DATE_PARAM
    assert set(DATE_PARAMS) == set(Report)


def test_range_splits_on_space_hyphen_space() -> None:
    """The value is split on the first " - " into a from and a to."""
    assert parse_range("2024-03-01 - 2024-03-04", now=NOW) == (at(1), at(4, LAST_SECOND))


def test_a_hyphen_without_spaces_does_not_split() -> None:
    """Only space-hyphen-space separates the parts; a bare value is a single date."""
    assert parse_range("2024-03-01", now=NOW) == (at(1), at(1, LAST_SECOND))


def test_from_without_time_starts_at_midnight() -> None:
    """A from with no time gets 00:00:00."""
    start, _ = parse_range("Mar 02, 2024 - 2024-03-02 10:00:00", now=NOW)
    assert start == at(2)


def test_to_without_time_ends_at_the_last_second() -> None:
    """A to with no time gets 23:59:59, so a one-day range is the whole day."""
    _, end = parse_range("2024-03-02 10:00:00 - Mar 02, 2024", now=NOW)
    assert end == at(2, LAST_SECOND)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "Aug 12, 2019 - Aug 12, 2019",
            (dt.datetime(2019, 8, 12), dt.datetime(2019, 8, 12, 23, 59, 59)),
        ),
        ("Mar 1, 2024 - Mar 3, 2024", (at(1), at(3, LAST_SECOND))),
        ("March 01, 2024 - March 03, 2024", (at(1), at(3, LAST_SECOND))),
        ("2024-03-01 - 2024-03-03", (at(1), at(3, LAST_SECOND))),
        (
            "2024-03-01 10:00:00 - 2024-03-03 17:30:15",
            (at(1, dt.time(10)), at(3, dt.time(17, 30, 15))),
        ),
        ("2024-03-01 10:00 - 2024-03-01 11:00", (at(1, dt.time(10)), at(1, dt.time(11)))),
        ("Mar 01, 2024 - 2024-03-02 06:00:00", (at(1), at(2, dt.time(6)))),
    ],
)
def test_documented_formats_are_parsed(
    value: str, expected: tuple[dt.datetime, dt.datetime]
) -> None:
    """%b %d, %Y, %Y-%m-%d and full datetimes (with or without seconds) are all read."""
    assert parse_range(value, now=NOW) == expected


def test_slashes_are_read_day_first() -> None:
    """08/12/2019 is the 8th of December, not the 12th of August."""
    assert parse_range("08/12/2019 - 08/12/2019", now=NOW) == (
        dt.datetime(2019, 12, 8),
        dt.datetime(2019, 12, 8, 23, 59, 59),
    )


def test_slashed_datetimes_are_read_day_first() -> None:
    """A slashed value with a time is day-first too."""
    start, _ = parse_range("03/04/2024 10:00:00 - 03/04/2024", now=NOW)
    assert start == at(3, dt.time(10), month=4)


@pytest.mark.parametrize("garbage", ["yesterday", "2024-13-45", "12 Foo 2024", "not a date"])
def test_unparseable_parts_silently_become_now(garbage: str) -> None:
    """A part no format fits is replaced by "now", with its time, without any error."""
    assert parse_range(f"{garbage} - Mar 05, 2024", now=NOW) == (NOW, at(5, LAST_SECOND))
    assert parse_range(f"Mar 05, 2024 - {garbage}", now=NOW) == (at(5), NOW)


def test_unparseable_from_alone_runs_to_the_end_of_today() -> None:
    """A lone unparseable value is "now" up to the end of now's day."""
    assert parse_range("soon", now=NOW) == (NOW, at(5, LAST_SECOND))


@pytest.mark.parametrize(
    "value", ["Mar 04, 2024", "2024-03-04", "Mar 04, 2024 - ", "Mar 04, 2024 -  "]
)
def test_missing_to_means_a_single_day(value: str) -> None:
    """A from alone (or with an empty to) covers that one whole day."""
    assert parse_range(value, now=NOW) == (at(4), at(4, LAST_SECOND))


def test_missing_to_after_a_datetime_runs_to_the_end_of_that_day() -> None:
    """A from with a time and no to ends at 23:59:59 of the same day."""
    assert parse_range("2024-03-04 15:00:00", now=NOW) == (at(4, dt.time(15)), at(4, LAST_SECOND))


@pytest.mark.parametrize("value", [None, "", "   "])
def test_absent_filter_means_today(value: str | None) -> None:
    """No filter at all is today, the whole day."""
    assert parse_range(value, now=NOW) == (at(5), at(5, LAST_SECOND))


def test_surrounding_spaces_are_ignored() -> None:
    """Spaces around each part do not change the result."""
    assert parse_range("  2024-03-01  -  2024-03-02 ", now=NOW) == (at(1), at(2, LAST_SECOND))
