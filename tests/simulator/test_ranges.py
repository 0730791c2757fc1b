"""The date filter over HTTP: which records a range selects, traps included."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from tests.simulator.conftest import (
    COLUMN,
    FIXED_NOW,
    NOON,
    day_bounds,
    fixed_clock,
    report,
    serve,
    wall,
)
from voiceapi_async import Report


@pytest.mark.asyncio
async def test_range_splits_on_space_hyphen_space() -> None:
    """A "<from> - <to>" value selects every record from the first day to the last, both whole."""
    async with serve(shape="a") as (sim, session):
        ids = (await report(session, sim, "calls", "Mar 02, 2024 - Mar 04, 2024")).ids()
    assert set(ids) == sim.ids_between(
        "calls", *day_bounds(dt.date(2024, 3, 2), dt.date(2024, 3, 4))
    )
    assert len(ids) == len(set(ids))


@pytest.mark.asyncio
async def test_date_only_bounds_cover_midnight_to_the_last_second() -> None:
    """A date-only from starts at 00:00:00 and a date-only to ends at 23:59:59."""
    async with serve(shape="a", calls_per_day=200) as (sim, session):
        ids = set((await report(session, sim, "calls", "2024-03-05 - 2024-03-05")).ids())
        morning = set(
            (await report(session, sim, "calls", "2024-03-05 - 2024-03-05 09:00:00")).ids()
        )
        evening = set(
            (await report(session, sim, "calls", "2024-03-05 18:00:00 - 2024-03-05")).ids()
        )
    day = sim.dataset.day(dt.date(2024, 3, 5)).calls
    assert ids == sim.ids_between("calls", *day_bounds(dt.date(2024, 3, 5)))
    assert ids == {record["id"] for record in day}
    assert day[0]["id"] in ids
    assert day[-1]["id"] in ids
    assert morning == sim.ids_between("calls", dt.datetime(2024, 3, 5), dt.datetime(2024, 3, 5, 9))
    assert day[0]["id"] in morning
    assert evening == sim.ids_between(
        "calls", dt.datetime(2024, 3, 5, 18), dt.datetime(2024, 3, 5, 23, 59, 59)
    )
    assert day[-1]["id"] in evening


@pytest.mark.asyncio
@pytest.mark.parametrize("name", ["calls", "recordings"])
async def test_bounds_are_inclusive_to_the_second(name: str) -> None:
    """A record exactly at the from or the to is matched; a second beyond it is not."""
    async with serve(shape="a") as (sim, session):
        record = sim.dataset.day(dt.date(2024, 3, 5)).records(Report(name))[0][10]
        moment = record[COLUMN[name]]
        after = (wall(moment) + dt.timedelta(seconds=1)).isoformat(" ")
        before = (wall(moment) - dt.timedelta(seconds=1)).isoformat(" ")
        exact = (await report(session, sim, name, f"{moment} - {moment}")).ids()
        ending = (await report(session, sim, name, f"2024-03-05 - {moment}")).ids()
        starting = (await report(session, sim, name, f"{moment} - 2024-03-05")).ids()
        too_late = (await report(session, sim, name, f"{after} - 2024-03-05")).ids()
        too_early = (await report(session, sim, name, f"2024-03-05 - {before}")).ids()
    assert record["id"] in exact
    assert set(exact) == sim.ids_between(name, wall(moment), wall(moment))
    assert record["id"] in ending
    assert record["id"] in starting
    assert record["id"] not in too_late
    assert record["id"] not in too_early


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("value", "start", "end"),
    [
        (
            "Mar 03, 2024 - Mar 05, 2024",
            dt.datetime(2024, 3, 3),
            dt.datetime(2024, 3, 5, 23, 59, 59),
        ),
        ("2024-03-03 - 2024-03-05", dt.datetime(2024, 3, 3), dt.datetime(2024, 3, 5, 23, 59, 59)),
        (
            "2024-03-03 10:15:00 - 2024-03-04 08:00:30",
            dt.datetime(2024, 3, 3, 10, 15),
            dt.datetime(2024, 3, 4, 8, 0, 30),
        ),
        (
            "Mar 03, 2024 - 2024-03-04 12:00:00",
            dt.datetime(2024, 3, 3),
            dt.datetime(2024, 3, 4, 12),
        ),
    ],
)
async def test_documented_date_formats_are_parsed(
    value: str, start: dt.datetime, end: dt.datetime
) -> None:
    """%b %d, %Y, %Y-%m-%d and full datetimes all select the same ground truth."""
    async with serve(shape="a") as (sim, session):
        ids = (await report(session, sim, "calls", value)).ids()
    assert set(ids) == sim.ids_between("calls", start, end)
    assert ids


@pytest.mark.asyncio
async def test_slashes_are_read_day_first() -> None:
    """08/03/2024 means 8 March, not 3 August."""
    async with serve(shape="a") as (sim, session):
        ids = set((await report(session, sim, "calls", "08/03/2024 - 08/03/2024")).ids())
    assert ids == sim.ids_between("calls", *day_bounds(dt.date(2024, 3, 8)))
    assert ids != sim.ids_between("calls", *day_bounds(dt.date(2024, 8, 3)))


@pytest.mark.asyncio
@pytest.mark.parametrize("name", ["calls", "recordings"])
async def test_unparseable_dates_silently_become_now(name: str) -> None:
    """A part the server cannot read is replaced by "now", with no error."""
    async with serve(shape="a", clock=fixed_clock(), calls_per_day=150) as (sim, session):
        from_now = await report(session, sim, name, "not-a-date - Mar 05, 2024")
        until_now = await report(session, sim, name, "Mar 05, 2024 - 2024/99/99")
    assert from_now.status == 200
    assert set(from_now.ids()) == sim.ids_between(name, NOON, dt.datetime(2024, 3, 5, 23, 59, 59))
    assert set(until_now.ids()) == sim.ids_between(name, dt.datetime(2024, 3, 5), NOON)
    assert from_now.ids()
    assert until_now.ids()


@pytest.mark.asyncio
async def test_now_is_read_in_the_account_zone() -> None:
    """The "now" an unparseable date becomes is the clock's wall time in the account's zone."""
    new_york = dt.datetime.fromtimestamp(FIXED_NOW, ZoneInfo("America/New_York"))
    now = new_york.replace(tzinfo=None)
    async with serve(shape="a", clock=fixed_clock(), timezone="America/New_York") as (
        sim,
        session,
    ):
        ids = set((await report(session, sim, "calls", "garbage - Mar 05, 2024")).ids())
    assert now == dt.datetime(2024, 3, 5, 1, 30)
    assert ids == sim.ids_between("calls", now, dt.datetime(2024, 3, 5, 23, 59, 59))
    assert ids


@pytest.mark.asyncio
async def test_missing_to_means_a_single_day() -> None:
    """A from alone covers that whole day."""
    async with serve(shape="a") as (sim, session):
        ids = set((await report(session, sim, "calls", "Mar 04, 2024")).ids())
    assert ids == sim.ids_between("calls", *day_bounds(dt.date(2024, 3, 4)))
    assert ids


@pytest.mark.asyncio
async def test_missing_filter_means_today() -> None:
    """Without the date parameter the server answers for today (by its clock)."""
    async with serve(shape="a", clock=fixed_clock()) as (sim, session):
        ids = set((await report(session, sim, "calls", None)).ids())
    assert ids == sim.ids_between("calls", *day_bounds(NOON.date()))


@pytest.mark.asyncio
@pytest.mark.parametrize("name", ["calls", "recordings"])
async def test_each_report_filters_on_its_own_column(name: str) -> None:
    """Calls filter on end_at and recordings on created_at, each by its own parameter."""
    async with serve(shape="a", calls_per_day=200) as (sim, session):
        rows = (await report(session, sim, name, "2024-03-05 - 2024-03-05")).page().rows
    assert rows
    assert all(row[COLUMN[name]].startswith("2024-03-05 ") for row in rows)
    if name == "calls":
        assert any(row["start_at"] and row["start_at"] < "2024-03-05" for row in rows)


@pytest.mark.asyncio
async def test_aware_bounds_are_read_in_the_account_zone() -> None:
    """ids_between accepts aware datetimes and converts them to the account's wall time."""
    async with serve(shape="a", timezone="Asia/Kolkata") as (sim, _):
        aware = (
            dt.datetime(2024, 3, 4, 18, 30, tzinfo=dt.UTC),
            dt.datetime(2024, 3, 5, 18, 29, 59, tzinfo=dt.UTC),
        )
        assert sim.ids_between("calls", *aware) == sim.ids_between(
            "calls", *day_bounds(dt.date(2024, 3, 5))
        )
