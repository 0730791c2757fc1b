import asyncio
from typing import Any

import orjson
import pytest

from tests.conftest import fixture_json
from voiceapi_async import (
    PagingError,
    Window,
    plan_windows,
)
from voiceapi_async._fanout import PAGES_PER_WINDOW_BUFFER, run_windows
from voiceapi_async._gate import Admission, PageGate
from voiceapi_async._paging import FetchPage, RowsPage, WindowReader
from voiceapi_async._protocol import PageData, decipher

TEMPLATE = fixture_json("calls_shape_a.json")["data"][0]
PAGINATOR = fixture_json("calls_shape_b_page1.json")


def rows(ids: list[str]) -> list[dict[str, Any]]:
    return [dict(TEMPLATE, id=record_id) for record_id in ids]


def page_data(
    page: int, last: int, total: int, records: list[dict[str, Any]], per_page: int = 2
) -> PageData:
    """Return ``records`` as page ``page`` of ``last``, deciphered from a paginator body."""
    first = (page - 1) * per_page + 1
    numbers: dict[str, int | None] = {"current_page": page, "last_page": last, "total": total}
    numbers |= {"per_page": per_page, "from": None, "to": None}
    if records:
        numbers |= {"from": first, "to": first + len(records) - 1}
    next_link = "https://example.test/voice/calls?page=2" if page < last else None
    data = dict(PAGINATOR["data"], data=records, next_page_url=next_link, **numbers)
    body = orjson.dumps(dict(PAGINATOR, data=data))
    return decipher(200, {"Content-Type": "application/json"}, body)


class PagedSource:
    """An in-memory server: each pass is a list of pages of ids; calls advance passes."""

    def __init__(
        self, passes: list[list[list[str]]], *, total: int | list[int] | None = None
    ) -> None:
        self.passes = passes
        self.totals = total if isinstance(total, list) else [total] * len(passes)
        self.requests: list[tuple[str, int]] = []
        self.reads = -1

    async def fetch(self, window: Window, page: int) -> PageData:
        """Serve one page of the current pass."""
        if page == 1:
            self.reads = min(self.reads + 1, len(self.passes) - 1)
        self.requests.append((window.key, page))
        await asyncio.sleep(0)
        pages = self.passes[self.reads]
        ids = pages[page - 1] if page <= len(pages) else []
        total = self.totals[self.reads]
        if total is None:
            total = sum(len(p) for p in pages)
        per_page = max(1, *map(len, pages))
        return page_data(page, len(pages), total, rows(ids), per_page)


def reader(fetch: FetchPage, **settings: Any) -> WindowReader:
    options: dict[str, Any] = {"lookahead": 3, "split_pages": 50}
    options.update({"rereads": 2, **settings})
    return WindowReader(fetch=fetch, **options)


async def read_all(source: PagedSource, window: Window, **settings: Any) -> list[RowsPage]:
    pages: list[RowsPage] = []

    async def emit(page: RowsPage) -> None:
        pages.append(page)

    await reader(source.fetch, **settings).read(window, emit, PageGate(6).admission(0))
    return pages


(DAY,) = plan_windows("calls", "2024-03-05", "2024-03-05", "Asia/Kolkata")


@pytest.mark.asyncio
async def test_pages_come_in_order_with_every_record_once() -> None:
    """Pages 2..N are fetched concurrently but handed on in page order."""
    source = PagedSource([[["a", "b"], ["c", "d"], ["e", "f"], ["g"]]])
    pages = await read_all(source, DAY)
    assert [p.data.numbers.current_page for p in pages] == [1, 2, 3, 4]
    assert [row["id"] for p in pages for row in p.rows()] == list("abcdefg")
    assert source.requests[0] == ("calls/2024-03-05", 1)
    assert all(p.data.rows == () for p in pages)  # waiting pages keep the body, not its rows


@pytest.mark.asyncio
async def test_a_shifted_window_is_read_again_and_never_repeats_a_record() -> None:
    """Offsets moved (a record arrived): the reread delivers only what was missed."""
    moved = [["a", "b"], ["b", "c"], ["d"]]  # "x" arrived at the front after page 1
    settled = [["x", "a"], ["b", "c"], ["d"]]
    source = PagedSource([moved, settled], total=5)
    pages = await read_all(source, DAY)
    ids = [row["id"] for p in pages for row in p.rows()]
    assert sorted(ids) == ["a", "b", "c", "d", "x"]
    assert len(ids) == len(set(ids))
    assert source.reads == 1


@pytest.mark.asyncio
async def test_a_window_that_keeps_changing_is_a_paging_error() -> None:
    """When no pass matches its total, PagingError names the window."""
    source = PagedSource([[["a", "b"], ["c"]]], total=4)
    with pytest.raises(PagingError, match=r"calls/2024-03-05 changed while it was read 3 times"):
        await read_all(source, DAY)


@pytest.mark.asyncio
async def test_an_empty_page_stops_the_window() -> None:
    """A page that comes back empty ends the window even if last_page said more."""
    source = PagedSource([[["a", "b"], [], ["c"]], [["a", "b"]]], total=[5, 2])
    pages = await read_all(source, DAY, rereads=1)
    assert [row["id"] for p in pages for row in p.rows()] == ["a", "b"]
    assert source.reads == 1  # the short pass did not match its total: read again


@pytest.mark.asyncio
async def test_a_bad_record_past_the_windows_end_is_never_raised() -> None:
    """A malformed page fetched ahead, past an empty page that ends the window, is dropped."""
    page_3_fetched = asyncio.Event()

    class AheadSource(PagedSource):
        async def fetch(self, window: Window, page: int) -> PageData:
            if page == 2:
                await page_3_fetched.wait()
            data = await super().fetch(window, page)
            if page == 3:
                page_3_fetched.set()
                bad = dict(data.rows[0], duration="not a duration")
                return page_data(3, 3, 5, [bad])
            return data

    source = AheadSource([[["a", "b"], [], ["c"]], [["a", "b"]]], total=[5, 2])
    pages = await read_all(source, DAY, rereads=1)
    assert [row["id"] for p in pages for row in p.rows()] == ["a", "b"]


@pytest.mark.asyncio
async def test_a_reread_that_splits_the_day_hands_on_no_record_twice() -> None:
    """A day that changed and then needs parts: the parts skip what the first pass sent."""
    day_reads = 0

    async def fetch(window: Window, page: int) -> PageData:
        nonlocal day_reads
        if window.is_whole_day:
            day_reads += page == 1
            if day_reads == 1:  # first pass: 3 of the 4 records the total announces
                pages = [["a", "b"], ["c"]]
                ids = pages[page - 1]
                last, total = 2, 4
            else:  # the re-read: the day has grown past the split threshold
                ids, last, total = ["a", "b"], 9, 18
        else:
            ids = ["a", "b", "c", "d"] if window.start.hour == 0 else []
            return page_data(page, 1, len(ids), rows(ids), per_page=4)
        return page_data(page, last, total, rows(ids))

    pages: list[RowsPage] = []

    async def emit(page: RowsPage) -> None:
        pages.append(page)

    await reader(fetch, split_pages=4).read(DAY, emit, PageGate(6).admission(0))
    assert [row["id"] for p in pages for row in p.rows()] == ["a", "b", "c", "d"]


@pytest.mark.asyncio
async def test_windows_with_too_many_pages_are_split() -> None:
    """A window whose first page announces more than split_pages pages is cut in parts."""

    class SplittableSource(PagedSource):
        async def fetch(self, window: Window, page: int) -> PageData:
            """Whole days have many pages; any part of a day has one."""
            if window.is_whole_day:
                return await super().fetch(window, page)
            self.requests.append((window.key, page))
            return page_data(1, 1, 1, rows([window.key]))

    source = SplittableSource([[["a"], ["b"], ["c"], ["d"], ["e"]]])
    pages = await read_all(source, DAY, split_pages=2, rereads=0)
    keys = {key for key, _ in source.requests}
    assert "calls/2024-03-05" in keys
    assert {p.window.key for p in pages} <= keys - {"calls/2024-03-05"}
    assert len({p.window.key for p in pages}) == 3


@pytest.mark.asyncio
async def test_run_windows_orders_pages_and_bounds_windows() -> None:
    """Ordered fan-out yields window by window and runs at most max_windows at once."""
    windows = plan_windows("calls", "2024-03-01", "2024-03-06", "UTC")
    running = 0
    peak = 0
    seen: list[str] = []

    async def read(window: Window, emit: Any, admission: Admission) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        for number in (1, 2):
            await asyncio.sleep(0.001 * (6 - window.start.day))
            await emit((window.key, number))
        running -= 1

    async def collect(item: Any) -> None:
        seen.append(f"{item[0]}#{item[1]}")

    await run_windows(windows, read, collect, max_windows=2, ordered=True, page_budget=1)
    assert seen == [f"{w.key}#{n}" for w in windows for n in (1, 2)]
    assert peak <= 2
    seen.clear()
    await run_windows(windows, read, collect, max_windows=3, ordered=False, page_budget=1)
    assert sorted(seen) == sorted(f"{w.key}#{n}" for w in windows for n in (1, 2))


@pytest.mark.asyncio
async def test_run_windows_stops_everything_on_the_first_error() -> None:
    """One failing window cancels the others and its error propagates."""
    windows = plan_windows("calls", "2024-03-01", "2024-03-04", "UTC")
    cancelled: list[str] = []

    async def read(window: Window, emit: Any, admission: Admission) -> None:
        if window.start.day == 2:
            raise PagingError("boom")
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(window.key)
            raise

    async def ignore(_item: Any) -> None:
        return None

    with pytest.raises(ExceptionGroup) as caught:
        await run_windows(windows, read, ignore, max_windows=4, ordered=False, page_budget=1)
    assert caught.group_contains(PagingError)
    assert len(cancelled) == 3


class CountingSource(PagedSource):
    """Also counts the pages fetched and not yet handed on."""

    def __init__(self, passes: list[list[list[str]]]) -> None:
        super().__init__(passes)
        self.held = 0
        self.peak_held = 0

    async def fetch(self, window: Window, page: int) -> PageData:
        """Serve a page after a short, page-dependent delay (out of order)."""
        await asyncio.sleep(0.001 * (page % 3))
        self.held += 1
        self.peak_held = max(self.peak_held, self.held)
        return await super().fetch(window, page)


@pytest.mark.asyncio
@pytest.mark.parametrize("ordered", [True, False])
async def test_a_slow_consumer_holds_the_stream_within_its_page_budget(ordered: bool) -> None:
    """However many windows and pages, a stream holds at most its page budget.

    In order mode the head window's look-ahead and the hand-off queues add to it.
    """
    windows = plan_windows("calls", "2024-03-01", "2024-03-06", "UTC")
    pages_of_ids = [[f"{n}a", f"{n}b"] for n in range(12)]
    source = CountingSource([pages_of_ids])
    window_reader = reader(source.fetch, lookahead=4, rereads=0)
    received: list[tuple[str, int]] = []

    async def slow_consumer(page: RowsPage) -> None:
        source.held -= 1
        await asyncio.sleep(0.002)
        received.append((page.window.key, page.data.numbers.current_page))

    await run_windows(
        windows, window_reader.read, slow_consumer, max_windows=4, ordered=ordered, page_budget=3
    )
    assert sorted(received) == sorted((w.key, n) for w in windows for n in range(1, 13))
    if ordered:
        assert received == [(w.key, n) for w in windows for n in range(1, 13)]
    head_lookahead = 4 if ordered else 0
    queued = 4 * 2 if ordered else 0
    assert source.peak_held <= 3 + head_lookahead + queued


@pytest.mark.asyncio
async def test_the_day_being_delivered_runs_ahead_of_a_slow_page() -> None:
    """Ordered: a slow page of the head day does not stop its later pages.

    The next day soon holds every token, waiting for the head; the head keeps
    fetching without tokens, up to its look-ahead, so request slots stay busy.
    """
    windows = plan_windows("calls", "2024-03-01", "2024-03-02", "UTC")
    pages_of_ids = [[f"{n}a", f"{n}b"] for n in range(20)]
    source = PagedSource([pages_of_ids])
    slow_page = asyncio.Event()
    started: list[tuple[str, int]] = []

    async def fetch(window: Window, page: int) -> PageData:
        started.append((window.key, page))
        if (window.key, page) == (windows[0].key, 2):
            await slow_page.wait()
        return await source.fetch(window, page)

    window_reader = reader(fetch, lookahead=12, rereads=0)
    received: list[tuple[str, int]] = []

    async def consume(page: RowsPage) -> None:
        received.append((page.window.key, page.data.numbers.current_page))

    async with asyncio.TaskGroup() as group:
        group.create_task(
            run_windows(
                windows, window_reader.read, consume, max_windows=2, ordered=True, page_budget=4
            )
        )
        for _ in range(50):
            await asyncio.sleep(0)
        head_started = [page for key, page in started if key == windows[0].key]
        later_started = [page for key, page in started if key == windows[1].key]
        assert head_started == list(range(1, 14))  # page 1, then 12 ahead of the slow page
        # The next day filled its ready queue, then took every token.
        assert len(later_started) == PAGES_PER_WINDOW_BUFFER + 4
        slow_page.set()
    assert received == [(w.key, n) for w in windows for n in range(1, 21)]
