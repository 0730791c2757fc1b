"""Paging over HTTP: page and per_page, their nonsense values, pages that add up to the truth."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.simulator.conftest import MAR5, all_ids, day_bounds, report, serve


@pytest.mark.asyncio
@pytest.mark.parametrize("shape", ["b", "c"])
async def test_page_and_per_page_select_a_slice(shape: str) -> None:
    """Page N with per_page K returns rows (N-1)*K+1 to N*K of the server's order."""
    async with serve(shape=shape, calls_per_day=100) as (sim, session):
        everything = (await report(session, sim, "calls", per_page=100)).ids()
        second = await report(session, sim, "calls", page=2, per_page=7)
    numbers = second.numbers()
    assert second.ids() == everything[7:14]
    assert numbers.current_page == 2
    assert numbers.per_page == 7
    assert numbers.first_row == 8
    assert numbers.last_row == 14


@pytest.mark.asyncio
async def test_default_page_size_is_fifteen() -> None:
    """Without per_page or limit a page holds 15 records."""
    async with serve() as (sim, session):
        reply = await report(session, sim, "calls")
    assert reply.numbers().per_page == 15
    assert len(reply.ids()) == 15


@pytest.mark.asyncio
async def test_limit_is_read_when_per_page_is_absent() -> None:
    """A limit sets the page size when per_page is absent; per_page wins when both are sent."""
    async with serve() as (sim, session):
        limited = await report(session, sim, "calls", limit=4)
        both = await report(session, sim, "calls", per_page=6, limit=4)
    assert limited.numbers().per_page == 4
    assert len(limited.ids()) == 4
    assert both.numbers().per_page == 6
    assert len(both.ids()) == 6


@pytest.mark.asyncio
@pytest.mark.parametrize("asked", ["0", "-3", "ten", "2.5", "\u00b2", "9" * 30])
async def test_nonsense_page_size_falls_back_to_the_default(asked: str) -> None:
    """A per_page that is not a positive whole number in PHP's range is ignored."""
    async with serve() as (sim, session):
        reply = await report(session, sim, "calls", per_page=asked)
    assert reply.status == 200
    assert reply.numbers().per_page == 15


@pytest.mark.asyncio
@pytest.mark.parametrize("shape", ["b", "c"])
@pytest.mark.parametrize("asked", ["0", "-2", "two", "\u00b2", "\u0663", "9" * 30])
async def test_nonsense_page_number_reads_as_page_one(shape: str, asked: str) -> None:
    """A page that is not a positive whole number in PHP's range is page 1, never a crash."""
    async with serve(shape=shape) as (sim, session):
        first = await report(session, sim, "calls", per_page=5)
        reply = await report(session, sim, "calls", per_page=5, page=asked)
    assert reply.status == 200
    assert reply.numbers().current_page == 1
    assert reply.ids() == first.ids()


@pytest.mark.asyncio
@pytest.mark.parametrize("shape", ["b", "c"])
async def test_the_largest_page_number_is_past_the_end(shape: str) -> None:
    """Page PHP_INT_MAX is a valid, empty, past-the-end page."""
    async with serve(shape=shape) as (sim, session):
        reply = await report(session, sim, "calls", per_page=100, page=2**63 - 1)
    numbers = reply.numbers()
    assert numbers.current_page == 2**63 - 1
    assert reply.page().rows == []
    assert numbers.first_row is None


@pytest.mark.asyncio
@pytest.mark.parametrize("shape", ["b", "c"])
async def test_per_page_max_caps_the_page_and_the_echo_tells(shape: str) -> None:
    """A per_page above per_page_max is cut to it, and the echoed per_page is what applied."""
    async with serve(shape=shape, per_page_max=12, calls_per_day=100) as (sim, session):
        capped = await report(session, sim, "calls", per_page=50)
        limited = await report(session, sim, "calls", limit=500)
    numbers = capped.numbers()
    assert numbers.per_page == 12
    assert len(capped.ids()) == 12
    assert numbers.last_page == -(-numbers.total // 12)
    assert limited.numbers().per_page == 12


@pytest.mark.asyncio
async def test_per_page_default_is_capped_by_the_maximum() -> None:
    """A default page size above the maximum is cut to the maximum too."""
    async with serve(per_page_default=40, per_page_max=25) as (sim, session):
        reply = await report(session, sim, "calls")
    assert reply.numbers().per_page == 25


@pytest.mark.asyncio
@pytest.mark.parametrize("shape", ["b", "c"])
async def test_past_the_end_page_is_empty(shape: str) -> None:
    """A page beyond the last returns empty data with null from and to, and no next link."""
    async with serve(shape=shape) as (sim, session):
        first = (await report(session, sim, "calls", per_page=10)).numbers()
        beyond = await report(session, sim, "calls", per_page=10, page=first.last_page + 3)
    page, numbers = beyond.page(), beyond.numbers()
    assert page.rows == []
    assert numbers.first_row is None
    assert numbers.last_row is None
    assert page.has_next_link is False
    assert numbers.total == first.total


@pytest.mark.asyncio
@pytest.mark.parametrize("shape", ["b", "c"])
async def test_an_empty_range_is_one_empty_page(shape: str) -> None:
    """A range without records answers total 0, last_page 1, null from and to."""
    async with serve(shape=shape, calls_per_day=0) as (sim, session):
        reply = await report(session, sim, "calls")
    page, numbers = reply.page(), reply.numbers()
    assert page.rows == []
    assert numbers.total == 0
    assert numbers.last_page == 1
    assert numbers.first_row is None
    assert page.has_next_link is False


@pytest.mark.asyncio
async def test_record_order_is_deterministic_but_not_by_time() -> None:
    """The same seed serves the same order, which is not sorted by the filtered column."""
    async with serve(seed=21) as (first, session), serve(seed=21) as (second, _):
        ids = await all_ids(session, first, "calls", MAR5, 100)
        again = await all_ids(session, second, "calls", MAR5, 100)
        repeated = await all_ids(session, second, "calls", MAR5, 100)
        rows = (await report(session, first, "calls", per_page=100)).page().rows
    assert ids == again
    assert ids == repeated
    keys = [row["end_at"] for row in rows]
    assert keys != sorted(keys)
    assert keys != sorted(keys, reverse=True)


# -- pages together are the ground truth -----------------------------------------------

RANGES = [
    ("Mar 05, 2024 - Mar 05, 2024", *day_bounds(dt.date(2024, 3, 5))),
    ("2024-03-02 - 2024-03-04", *day_bounds(dt.date(2024, 3, 2), dt.date(2024, 3, 4))),
    (
        "2024-03-03 22:10:00 - 2024-03-04 09:45:30",
        dt.datetime(2024, 3, 3, 22, 10),
        dt.datetime(2024, 3, 4, 9, 45, 30),
    ),
    (
        "2024-03-06 10:00:00 - 2024-03-06 10:59:59",
        dt.datetime(2024, 3, 6, 10),
        dt.datetime(2024, 3, 6, 10, 59, 59),
    ),
]


@pytest.mark.asyncio
@pytest.mark.parametrize("shape", ["b", "c"])
@pytest.mark.parametrize("name", ["calls", "recordings"])
@pytest.mark.parametrize("per_page", [1, 7, 15, 100])
async def test_pages_together_are_exactly_the_ground_truth(
    shape: str, name: str, per_page: int
) -> None:
    """For any range and page size, the pages' ids are the dataset's ids, without duplicates."""
    async with serve(shape=shape, calls_per_day=25, seed=per_page) as (sim, session):
        for value, start, end in RANGES:
            ids = await all_ids(session, sim, name, value, per_page)
            assert len(ids) == len(set(ids)), value
            assert set(ids) == sim.ids_between(name, start, end), value


@pytest.mark.asyncio
@pytest.mark.parametrize("name", ["calls", "recordings"])
async def test_shape_a_is_exactly_the_ground_truth(name: str) -> None:
    """Shape A's single page holds exactly the range's ids, for every range."""
    async with serve(shape="a", calls_per_day=25) as (sim, session):
        for value, start, end in RANGES:
            ids = (await report(session, sim, name, value)).ids()
            assert len(ids) == len(set(ids)), value
            assert set(ids) == sim.ids_between(name, start, end), value


async def _ground_truth_case(
    shape: str, name: str, per_page: int, start: dt.datetime, end: dt.datetime
) -> tuple[list[str], set[str]]:
    value = f"{start:%Y-%m-%d %H:%M:%S} - {end:%Y-%m-%d %H:%M:%S}"
    async with serve(shape=shape, calls_per_day=20, seed=per_page) as (sim, session):
        ids = await all_ids(session, sim, name, value, per_page)
        return ids, sim.ids_between(name, start, end)


@settings(max_examples=15, deadline=None)
@given(
    shape=st.sampled_from(["b", "c"]),
    name=st.sampled_from(["calls", "recordings"]),
    per_page=st.integers(min_value=1, max_value=30),
    start=st.datetimes(min_value=dt.datetime(2024, 3, 1), max_value=dt.datetime(2024, 3, 6)),
    length=st.timedeltas(min_value=dt.timedelta(0), max_value=dt.timedelta(days=2)),
)
def test_any_range_shape_and_page_size_match_the_ground_truth(
    shape: str, name: str, per_page: int, start: dt.datetime, length: dt.timedelta
) -> None:
    """Random ranges to the second, shapes and page sizes all page to exactly the truth."""
    start = start.replace(microsecond=0)
    end = start + dt.timedelta(seconds=int(length.total_seconds()))
    ids, truth = asyncio.run(_ground_truth_case(shape, name, per_page, start, end))
    assert len(ids) == len(set(ids))
    assert set(ids) == truth
