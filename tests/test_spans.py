"""Multi-day spans read by the real reader from an in-memory server with uneven days."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from tests.test_paging import page_data, rows
from voiceapi_async import Window, plan_windows
from voiceapi_async._fanout import run_windows
from voiceapi_async._paging import RowsPage, WindowReader
from voiceapi_async._protocol import PageData, decipher
from voiceapi_async._sizing import Sizing
from voiceapi_async._windows import wall_date

TZ = "Asia/Kolkata"


class DaySource:
    """Serves ``counts[day]`` records a day, filtered by window, in a shuffled order."""

    def __init__(self, counts: dict[dt.date, int], *, per_page: int, bare: bool = False) -> None:
        self.per_page = per_page
        self.bare = bare
        self.records: list[dict[str, Any]] = []
        for day, count in sorted(counts.items()):
            for n in range(count):
                at = dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=n * 86_399 // count)
                self.records.append({"id": f"{day}-{n}", "end_at": f"{at:%Y-%m-%d %H:%M:%S}"})
        random.Random(1).shuffle(self.records)
        self.requests: list[tuple[str, int]] = []

    def between(self, window: Window) -> list[dict[str, Any]]:
        """The records whose end_at lies in ``window``."""
        lo = window.start.naive()
        hi = window.end.naive()
        return [
            record
            for record in self.records
            if lo <= dt.datetime.fromisoformat(record["end_at"]) <= hi
        ]

    async def fetch(self, window: Window, page: int) -> PageData:
        """Serve one page of ``window`` (or everything, as a bare list)."""
        self.requests.append((window.key, page))
        found = self.between(window)
        if self.bare:
            body = orjson.dumps({"status": "OK", "data": found})
            return decipher(200, {"Content-Type": "application/json"}, body)
        last = max(1, -(-len(found) // self.per_page))
        chosen = found[(page - 1) * self.per_page : page * self.per_page]
        return page_data(
            page, last, len(found), [dict(rows([r["id"]])[0], **r) for r in chosen], self.per_page
        )


async def read(source: DaySource, first: str, last: str) -> list[RowsPage]:
    days = plan_windows("calls", first, last, TZ)
    sizing = Sizing(source.per_page, split_pages=50)
    reader = WindowReader(
        fetch=source.fetch,
        lookahead=4,
        split_pages=50,
        rereads=1,
        sizing=sizing,
        day_of=lambda row: wall_date(row.get("end_at"), ZoneInfo(TZ)),
    )
    pages: list[RowsPage] = []

    async def emit(page: RowsPage) -> None:
        pages.append(page)

    await run_windows(
        sizing.plan(days), reader.read, emit, max_windows=4, ordered=True, page_budget=8
    )
    return pages


def by_day(pages: list[RowsPage]) -> dict[str, list[str]]:
    days: dict[str, list[str]] = {}
    for page in pages:
        days.setdefault(page.window.key, []).extend(row["id"] for row in page.rows())
    return days


def days_of(first: dt.date, count: int, per_day: int) -> dict[dt.date, int]:
    return {first + dt.timedelta(days=n): per_day for n in range(count)}


@pytest.mark.asyncio
async def test_a_sparse_month_comes_back_day_by_day_from_one_request() -> None:
    source = DaySource(days_of(dt.date(2024, 3, 1), 31, 3), per_page=100)
    pages = await read(source, "2024-03-01", "2024-03-31")
    assert len(source.requests) == 1
    days = by_day(pages)
    assert list(days) == [f"calls/2024-03-{n:02d}" for n in range(1, 32)]
    for key, ids in days.items():
        assert sorted(ids) == sorted(f"{key[6:]}-{n}" for n in range(3))


@pytest.mark.asyncio
async def test_days_with_nothing_still_get_their_page() -> None:
    counts = {dt.date(2024, 3, 2): 5}
    source = DaySource(counts, per_page=100)
    days = by_day(await read(source, "2024-03-01", "2024-03-04"))
    assert {key: len(ids) for key, ids in days.items()} == {
        "calls/2024-03-01": 0,
        "calls/2024-03-02": 5,
        "calls/2024-03-03": 0,
        "calls/2024-03-04": 0,
    }


@pytest.mark.asyncio
async def test_a_span_denser_than_planned_is_planned_again_and_nothing_is_lost() -> None:
    """Sparse, then a sudden dense stretch: the surprised span is split, every record once."""
    counts = days_of(dt.date(2024, 1, 1), 31, 2) | days_of(dt.date(2024, 2, 1), 29, 2)
    counts |= days_of(dt.date(2024, 2, 20), 5, 300)  # a burst the plan did not expect
    source = DaySource(counts, per_page=10)
    pages = await read(source, "2024-01-01", "2024-02-29")
    days = by_day(pages)
    assert len(days) == 60
    assert list(days) == sorted(days)
    ids = [record_id for day in days.values() for record_id in day]
    assert len(ids) == len(set(ids)) == sum(counts.values())
    assert len(set(source.requests)) == len(source.requests)  # no page asked twice


@pytest.mark.asyncio
async def test_a_bare_list_answer_is_used_whole_however_large() -> None:
    source = DaySource(days_of(dt.date(2024, 3, 1), 10, 500), per_page=10, bare=True)
    days = by_day(await read(source, "2024-03-01", "2024-03-10"))
    assert len(source.requests) == 1
    assert sum(map(len, days.values())) == 5000


@pytest.mark.asyncio
async def test_a_row_outside_the_span_lands_on_its_first_day_for_the_window_check() -> None:
    """The client then raises OutOfWindowError there (test_hostile proves it end to end)."""
    source = DaySource(days_of(dt.date(2024, 3, 1), 3, 2), per_page=100)
    stray = {"id": "stray", "end_at": "2024-05-01 10:00:00"}
    real_between = source.between
    source.between = lambda window: [*real_between(window), stray]  # type: ignore[method-assign]
    days = by_day(await read(source, "2024-03-01", "2024-03-03"))
    assert "stray" in days["calls/2024-03-01"]
    assert sum(map(len, days.values())) == 7
