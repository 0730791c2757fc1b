"""One span's pages: page 1, then the rest concurrently, de-duplicated and checked.

A span (see :mod:`voiceapi_async._sizing`) is one day, a day planned in parts, or
several sparse days in one request window. Page 1 tells the size of the window
(``last_page``, ``total``). A day whose page 1 announces more than ``split_pages``
pages is split into sub-day windows first. A multi-day span is read whole, then its
rows are handed to their days (the server returns them in no order); one that holds
far more than it was sized for is planned again, day by day.

Pages 2..N are fetched concurrently, each admitted by the window's
:class:`~voiceapi_async._gate.Admission` (fan-out's page budget), at most
``lookahead`` of them between fetch and hand-off, and handed on in page order.
Rows whose id was already handed on are dropped. When the distinct ids of a
pass do not match ``total``, or the server's numbers moved between pages, the
window changed under us: it is read again (bounded), then :class:`PagingError`.

Pages travel to the consumer as the server's compact body (with the positions of
their new rows) and become rows and typed records only when the consumer takes
them: parsed rows or records that wait in queues go cold in the CPU's caches, and
reading and freeing them later costs more than parsing the body a second time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, cast

import attrs

from voiceapi_async._convert import row_id
from voiceapi_async._errors import PagingError
from voiceapi_async._gate import Admission
from voiceapi_async._models import Shape, Window
from voiceapi_async._protocol import PageData, implausible_numbers, next_page, read_rows
from voiceapi_async._sizing import Outcome, Sizing, Span, parts_for
from voiceapi_async._windows import split_window

logger = logging.getLogger("voiceapi_async")

FetchPage = Callable[[Window, int], Coroutine[Any, Any, PageData]]
"""Fetch one page of one window."""
DayOf = Callable[[Any], "dt.date | None"]
"""The calendar day (in the account's zone) of a raw row's filtered timestamp, if it has one."""


@attrs.frozen(slots=True)
class RowsPage:
    """One page as read: its window and the server's answer, for its new rows only."""

    window: Window
    data: PageData
    """The answer, without its parsed rows: :meth:`rows` reads them from its body."""
    keep: Sequence[int] | None = None
    """The positions of the rows not handed on before (``None``: every row)."""
    span: _SpanRows | None = None
    """For a day read within a multi-day span: the span's rows, shared by its days."""
    day: int = 0
    """The day's position in :attr:`span`."""

    def rows(self) -> list[Any]:
        """Return the page's new rows, as the server sent them."""
        if self.span is not None:
            return self.span.take(self.day)
        rows = read_rows(self.data.body, self.data.shape)
        return rows if self.keep is None else [rows[n] for n in self.keep]

    def repeated_rows(self) -> list[Any]:
        """Return the page's rows that were dropped as already handed on.

        They must lie in the window too: a part that answers with another part's
        records would otherwise lose its own without a trace.
        """
        if self.keep is None or self.span is not None:
            return []
        kept = set(self.keep)
        rows = read_rows(self.data.body, self.data.shape)
        return [row for position, row in enumerate(rows) if position not in kept]


@attrs.frozen(slots=True)
class _Fetched:
    """A page just fetched, reduced to what paging needs until it is handed on."""

    data: PageData
    """The answer, without its parsed rows (they are read from its body again)."""
    ids: Sequence[str | None]
    """Each row's id, in order (``None``: the row has none)."""
    following: int | None
    """The number of the next page, or ``None`` after the last."""

    @classmethod
    def of(cls, window: Window, number: int, data: PageData) -> _Fetched:
        """Reduce page ``number`` of ``window``.

        Raises:
            PagingError: the page's paging numbers cannot be true.
        """
        reason = implausible_numbers(data, number)
        if reason is not None:
            raise PagingError(f"window {window.key}: impossible paging numbers: {reason}")
        ids: Sequence[str | None] | None = _text_ids(data.rows)
        if ids is None:
            ids = [row_id(row) if isinstance(row, Mapping) else None for row in data.rows]
        return cls(attrs.evolve(data, rows=()), ids, next_page(data))


Emit = Callable[[RowsPage], Awaitable[None]]
"""Hand a page on (may wait: that is the back-pressure)."""

_SHORTEST_SPLIT_SECONDS = 60
_TEXT = frozenset({str})


@attrs.frozen(kw_only=True)
class WindowReader:
    """Reads spans into pages of rows, one day's pages at a time.

    Every page fetch passes the span's admission first; a window keeps at most ``lookahead``
    of its pages between fetch and hand-off. That bounds the window being delivered,
    which passes the gate without tokens in order mode: with room to run ahead, one
    slow page does not idle the other request slots.
    """

    fetch: FetchPage
    lookahead: int | Callable[[], int]
    """Pages a window may hold between fetch and hand-off (a callable: asked per window)."""
    split_pages: int
    rereads: int
    sizing: Sizing = attrs.field(factory=lambda: Sizing(100, split_pages=50))
    """The stream's span sizing: every first page read is reported to it."""
    day_of: DayOf = attrs.field(default=lambda row: None)
    """A raw row's day, to hand a multi-day span's rows to their days."""

    async def read(self, span: Span | Window, emit: Emit, admission: Admission) -> None:
        """Read every page of ``span`` and emit them in page order, day by day.

        Each page fetch waits for ``admission`` first. A bare window is read as one day.

        Raises:
            PagingError: the window kept changing while it was read.
        """
        if isinstance(span, Window):
            span = Span.of([span])
        if len(span.days) > 1:
            await self._read_span(span, emit, admission)
            return
        if span.probe:  # a one-day range: nothing waits to be sized from it
            self.sizing.probe_outcome(Outcome.READ)
        if span.parts > 1:
            pieces = span.pieces()
            firsts = await self._first_pages(pieces, admission)
            self._observe(span.window, firsts)
            await self._read_parts(span.window, None, pieces, firsts, admission, emit, set())
        else:
            await self._read_window(span.window, emit, admission, set())

    async def _read_span(self, span: Span, emit: Emit, admission: Admission) -> None:
        """Read a multi-day span whole, then hand each day its rows (or plan it again)."""
        for attempt in range(self.rereads + 1):
            async with admission.holding():
                first = await self._fetch(span.window, 1)
            self._observe(span.window, [first])
            whole = first.data.shape is Shape.BARE_LIST  # every row came at once
            if not whole and not self.sizing.fits(first.data.numbers.total):
                if span.probe and attempt == 0:
                    self.sizing.probe_outcome(Outcome.DECLINED)
                    return
                children = self.sizing.split(span)
                logger.info(
                    "span %s holds %d records: reading it as %d spans",
                    span.window.key,
                    first.data.numbers.total,
                    len(children),
                )
                for child in children:
                    await self.read(child, emit, admission)
                return
            if span.probe:
                self.sizing.probe_outcome(Outcome.READ)
            pages: list[RowsPage] = []
            collect = _collector(pages)

            state = _Pass(first, set())
            await self._deliver(span.window, first, state, collect, True)
            if first.following is not None and not state.halted:
                await self._read_rest(
                    span.window, admission, first, state, collect, first_pass=True
                )
            if state.consistent and len(state.ids) == first.data.numbers.total:
                rows = _SpanRows(pages, span.days, self.day_of)
                for index, day in enumerate(span.days):
                    await emit(RowsPage(day, first.data, None, rows, index))
                return
            logger.warning("span %s changed while paging; reading it again", span.window.key)
        raise PagingError(
            f"window {span.window.key} changed while it was read {self.rereads + 1} times "
            "(records arrived or left between pages); try again later or use smaller windows"
        )

    def _observe(self, window: Window, firsts: Sequence[_Fetched]) -> None:
        numbers = [first.data.numbers for first in firsts]
        self.sizing.observe(window, sum(n.total for n in numbers), max(n.per_page for n in numbers))

    async def _read_window(
        self,
        window: Window,
        emit: Emit,
        admission: Admission,
        seen: set[str],
        first: _Fetched | None = None,
    ) -> None:
        """Read ``window``; ``seen`` holds the ids already handed on for it (or its day).

        ``first`` is the window's page 1 when it was fetched already.
        """
        for attempt in range(self.rereads + 1):
            given = first if attempt == 0 else None
            if await self._read_pass(window, admission, emit, seen, given, first_pass=attempt == 0):
                return
            logger.warning("window %s changed while paging; reading it again", window.key)
        raise PagingError(
            f"window {window.key} changed while it was read {self.rereads + 1} times "
            "(records arrived or left between pages); try again later or use smaller windows"
        )

    async def _read_pass(
        self,
        window: Window,
        admission: Admission,
        emit: Emit,
        seen: set[str],
        first: _Fetched | None,
        *,
        first_pass: bool,
    ) -> bool:
        async with admission.holding():
            if first is None:
                first = await self._fetch(window, 1)
                self._observe(window, [first])
            parts = self._parts(window, first)
            if not parts:
                state = _Pass(first, seen)
                await self._deliver(window, first, state, emit, first_pass)
        if parts:
            pieces = split_window(window, parts)
            logger.info(
                "window %s has %d pages: reading it as %d parts",
                window.key,
                first.data.numbers.last_page,
                len(pieces),
            )
            firsts = await self._first_pages(pieces, admission)
            await self._read_parts(window, first, pieces, firsts, admission, emit, seen)
            return True
        if first.following is not None and not state.halted:
            await self._read_rest(window, admission, first, state, emit, first_pass=first_pass)
        return state.consistent and len(state.ids) == first.data.numbers.total

    async def _first_pages(self, pieces: Sequence[Window], admission: Admission) -> list[_Fetched]:
        """Fetch every piece's page 1, concurrently."""

        async def first_page(piece: Window) -> _Fetched:
            async with admission.holding():
                return await self._fetch(piece, 1)

        async with asyncio.TaskGroup() as group:
            started = [group.create_task(first_page(piece)) for piece in pieces]
        return [task.result() for task in started]

    async def _read_parts(
        self,
        window: Window,
        whole: _Fetched | None,
        pieces: Sequence[Window],
        firsts: Sequence[_Fetched],
        admission: Admission,
        emit: Emit,
        seen: set[str],
    ) -> None:
        """Read ``window`` as ``pieces``, once their counts add up to its own.

        Every part's page 1 is fetched first (and then used, not fetched again): a
        server that does not apply the date filter claims the whole count for every
        part (caught against ``whole``, the window's own page 1, when it was read)
        or the same records in every part, and is caught here, before any part is
        paged. All parts share ``seen``: a re-read pass that splits skips what
        earlier passes handed on.
        """
        if whole is not None:
            numbers = whole.data.numbers
            claimed = sum(first.data.numbers.total for first in firsts)
            if claimed > numbers.total + numbers.per_page:  # a page's worth may arrive meanwhile
                raise PagingError(
                    f"window {window.key} holds {numbers.total} records, but its "
                    f"{len(pieces)} parts claim {claimed}: the server's counts do not add up "
                    "(it may not apply the date filter)"
                )
        _check_disjoint(window, firsts)
        for piece, first in zip(pieces, firsts, strict=True):
            await self._read_window(piece, emit, admission, seen, first)

    async def _fetch(self, window: Window, number: int) -> _Fetched:
        return _Fetched.of(window, number, await self.fetch(window, number))

    def _parts(self, window: Window, first: _Fetched) -> int:
        """Return how many sub-windows ``window`` should be read as (0: read it whole)."""
        if (
            first.following is None
            or (window.end - window.start).total_seconds() < _SHORTEST_SPLIT_SECONDS
        ):
            return 0
        return parts_for(first.data.numbers.last_page, self.split_pages)

    async def _read_rest(
        self,
        window: Window,
        admission: Admission,
        first: _Fetched,
        state: _Pass,
        emit: Emit,
        *,
        first_pass: bool,
    ) -> None:
        # Pages between fetch and hand-off, oldest first, each with its gate token.
        started: asyncio.Queue[tuple[asyncio.Task[_Fetched], bool]] = asyncio.Queue()
        ahead = asyncio.Semaphore(self.lookahead() if callable(self.lookahead) else self.lookahead)
        numbers = range(first.data.numbers.current_page + 1, first.data.numbers.last_page + 1)

        async def launch(group: asyncio.TaskGroup) -> None:
            for number in numbers:
                await ahead.acquire()
                token = await admission.acquire()
                started.put_nowait((group.create_task(self._fetch(window, number)), token))

        held: list[tuple[asyncio.Task[_Fetched], bool]] = []
        async with asyncio.TaskGroup() as group:
            launcher = group.create_task(launch(group))
            try:
                for _ in numbers:
                    held.append(await started.get())
                    page = await held[0][0]
                    await self._deliver(window, page, state, emit, first_pass)
                    _, token = held.pop()
                    ahead.release()
                    admission.release(token)
                    if page.following is None or state.halted:
                        break
            finally:
                launcher.cancel()
                while not started.empty():
                    held.append(started.get_nowait())
                for task, token in held:
                    task.cancel()
                    admission.release(token)

    async def _deliver(
        self, window: Window, page: _Fetched, state: _Pass, emit: Emit, first_pass: bool
    ) -> None:
        state.check(page.data, len(page.ids))
        keep = state.take(page.ids)
        if (page.ids if keep is None else keep) or first_pass:
            await emit(RowsPage(window, page.data, keep))


def _check_disjoint(window: Window, firsts: Sequence[_Fetched]) -> None:
    """Raise :class:`PagingError` when two parts' first pages share a record.

    Parts are disjoint ranges and a record has one timestamp: the same id in two
    parts means the server does not apply the sub-day date filter.
    """
    held: set[str] = set()
    for first in firsts:
        ids = {record_id for record_id in first.ids if record_id is not None}
        if not held.isdisjoint(ids):
            raise PagingError(
                f"window {window.key}: the same records came back for different parts of it "
                f"(such as {min(held & ids)!r}): the server does not apply the date filter "
                "to parts of a day"
            )
        held |= ids


def _text_ids(rows: Sequence[Any]) -> list[str] | None:
    """Return the rows' ids when every row has a text id (the common case), else ``None``."""
    try:
        ids = [row["id"] for row in rows]
    except (KeyError, TypeError, IndexError):
        return None
    return ids if set(map(type, ids)) <= _TEXT else None


class _Pass:
    """What one read of a window saw: its ids and whether the numbers held still."""

    def __init__(self, first: _Fetched, seen: set[str]) -> None:
        self.numbers = first.data.numbers
        self.seen = seen
        # On a window's first pass every id seen is an id of this pass: one set serves.
        self.ids: set[str] = seen if not seen else set()
        self.consistent = True
        self.halted = False
        """A page no still window gives (only ids this pass had seen, or too few rows
        before the last page): the pass stops here and the window is read again."""

    def take(self, page_ids: Sequence[str | None]) -> list[int] | None:
        """Note a page's ids; return ``None`` if all are new, else the new rows' positions.

        A row without an id is always kept: structuring it will name the problem.
        """
        if None in page_ids:
            return self._take_one_by_one(page_ids)
        ids = cast("Sequence[str]", page_ids)
        seen = self.seen
        if seen.isdisjoint(ids):  # new to the window, so new to this pass too
            before = len(seen)
            seen.update(ids)
            if len(seen) - before == len(ids):
                if self.ids is not seen:
                    self.ids.update(ids)
                return None
            seen.difference_update(ids)
        return self._take_one_by_one(ids)

    def _take_one_by_one(self, ids: Sequence[str | None]) -> list[int]:
        known = [record_id for record_id in ids if record_id is not None]
        if known and self.ids.issuperset(known):
            # Only rows this pass handed on already: offsets moved by a page or more, or
            # the server repeats itself. Either way, reading on would not end well.
            self.consistent = False
            self.halted = True
        fresh = []
        for position, record_id in enumerate(ids):
            if record_id is None:
                fresh.append(position)
                continue
            if record_id not in self.seen:
                self.seen.add(record_id)
                fresh.append(position)
            self.ids.add(record_id)  # after the check: on a first pass, ids is seen
        return fresh

    def check(self, data: PageData, rows: int) -> None:
        """Note whether ``data``'s numbers, with its ``rows`` rows, agree with page 1's."""
        now, then = data.numbers, self.numbers
        if (now.total, now.last_page, now.per_page) != (then.total, then.last_page, then.per_page):
            self.consistent = False
        if 0 < rows < now.per_page and now.current_page < now.last_page:
            # Short before the last page: records left, or the numbers are invented.
            self.consistent = False
            self.halted = True


class _SpanRows:
    """A multi-day span's rows, handed to their days when the consumer takes them.

    The pages stay compact until the first day is taken; then every page is read
    once and its rows grouped by day. A row whose day is not in the span (or that
    has no timestamp) goes to the first day, where the window check judges it.
    """

    def __init__(self, pages: Sequence[RowsPage], days: Sequence[Window], day_of: DayOf) -> None:
        self._pages: Sequence[RowsPage] | None = pages
        self._days = [day.start.date() for day in days]
        self._day_of = day_of
        self._by_day: list[list[Any]] = []

    def take(self, index: int) -> list[Any]:
        """Return (once) the rows of the span's ``index``-th day."""
        if self._pages is not None:
            position: dict[dt.date | None, int] = {day: n for n, day in enumerate(self._days)}
            self._by_day = [[] for _ in self._days]
            for page in self._pages:
                for row in page.rows():
                    day = self._day_of(row) if isinstance(row, Mapping) else None
                    self._by_day[position.get(day, 0)].append(row)
            self._pages = None
        rows, self._by_day[index] = self._by_day[index], []
        return rows


def _collector(pages: list[RowsPage]) -> Emit:
    """An emit that keeps the pages (a multi-day span hands them on once it is whole)."""

    async def collect(page: RowsPage) -> None:
        pages.append(page)

    return collect
