"""Live mode: records that arrive while a client pages, so totals move under it."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.simulator.conftest import MAR5, all_ids, day_bounds, report, serve


@pytest.mark.asyncio
@pytest.mark.parametrize("shape", ["b", "c"])
@pytest.mark.parametrize("name", ["calls", "recordings"])
async def test_live_mode_adds_records_while_paging(shape: str, name: str) -> None:
    """With live_every=1 each request adds a record to the range: totals move between pages."""
    bounds = day_bounds(dt.date(2024, 3, 5))
    async with serve(shape=shape, live_every=1, calls_per_day=40) as (sim, session):
        before = sim.ids_between(name, *bounds)
        pages = [await report(session, sim, name, page=n, per_page=5) for n in (1, 2, 3)]
        totals = [page.numbers().total for page in pages]
        after = sim.ids_between(name, *bounds)
        final = await all_ids(session, sim, name, MAR5, 100)
    assert totals == [len(before) + 1, len(before) + 2, len(before) + 3]
    assert after > before
    assert len(after) == len(before) + 3
    assert set(final) == sim.ids_between(name, *bounds)
    assert len(final) == len(before) + 4


@pytest.mark.asyncio
async def test_live_mode_every_n_requests() -> None:
    """live_every=3 adds one record every third report request."""
    async with serve(live_every=3) as (sim, session):
        totals = [(await report(session, sim, "calls")).numbers().total for _ in range(6)]
    assert totals[0] == totals[1]
    assert totals[2] == totals[0] + 1
    assert totals[3] == totals[4] == totals[2]
    assert totals[5] == totals[0] + 2


@pytest.mark.asyncio
async def test_still_dataset_keeps_totals() -> None:
    """Without live mode, repeating a request never changes its total."""
    async with serve() as (sim, session):
        totals = {(await report(session, sim, "calls", page=n)).numbers().total for n in (1, 2, 3)}
    assert len(totals) == 1
