"""One window's pages: page 1, then the rest concurrently, de-duplicated and checked.

Page 1 tells the size of the window (``last_page``, ``total``). A window whose
page 1 announces more than ``split_pages`` pages is split into sub-day windows
first. Pages 2..N are fetched concurrently, each admitted by the window's
:class:`~voiceapi_async._gate.Admission` (fan-out's page budget), at most
``lookahead`` of them between fetch and hand-off, and handed on in page order.
Rows whose id was already handed on are dropped. When the distinct ids of a
pass do not match ``total``, or the server's numbers moved between pages, the
window changed under us: it is read again (bounded), then :class:`PagingError`.

Pages travel as the server's rows (flat dicts, which the garbage collector does
not track); they become typed records only when the consumer takes them, so
records never wait in queues, where every collection would walk them.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any

import attrs

from voiceapi_async._convert import row_id
from voiceapi_async._errors import PagingError
from voiceapi_async._gate import Admission
from voiceapi_async._models import Window
from voiceapi_async._protocol import PageData, next_page
from voiceapi_async._windows import split_window

logger = logging.getLogger("voiceapi_async")

FetchPage = Callable[[Window, int], Coroutine[Any, Any, PageData]]
"""Fetch one page of one window."""


@attrs.frozen(slots=True)
class RowsPage:
    """One page as read: its window and the server's answer, de-duplicated rows only."""

    window: Window
    data: PageData


Emit = Callable[[RowsPage], Awaitable[None]]
"""Hand a page on (may wait: that is the back-pressure)."""

_SHORTEST_SPLIT_SECONDS = 60
_TEXT = frozenset({str})


@attrs.frozen(kw_only=True)
class WindowReader:
    """Reads windows into pages of rows.

    Every page fetch passes the window's admission first; a window keeps at most ``lookahead``
    of its pages between fetch and hand-off. That bounds the window being delivered,
    which passes the gate without tokens in order mode: with room to run ahead, one
    slow page does not idle the other request slots.
    """

    fetch: FetchPage
    lookahead: int
    split_pages: int
    rereads: int

    async def read(self, window: Window, emit: Emit, admission: Admission) -> None:
        """Read every page of ``window`` and emit them in page order.

        Each page fetch waits for ``admission`` first.

        Raises:
            PagingError: the window kept changing while it was read.
        """
        await self._read_window(window, emit, admission, set())

    async def _read_window(
        self, window: Window, emit: Emit, admission: Admission, seen: set[str]
    ) -> None:
        """Read ``window``; ``seen`` holds the ids already handed on for it (or its day)."""
        for attempt in range(self.rereads + 1):
            if await self._read_pass(window, admission, emit, seen, first_pass=attempt == 0):
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
        *,
        first_pass: bool,
    ) -> bool:
        async with admission.holding():
            first = await self.fetch(window, 1)
            parts = self._parts(window, first)
            if not parts:
                state = _Pass(first, seen)
                await self._deliver(window, first, state, emit, first_pass)
        if parts:
            logger.info(
                "window %s has %d pages: reading it as %d parts",
                window.key,
                first.numbers.last_page,
                parts,
            )
            for part in split_window(window, parts):
                # A re-read pass can split: its parts skip what earlier passes handed on.
                await self._read_window(part, emit, admission, seen)
            return True
        if next_page(first) is not None:
            await self._read_rest(window, admission, first, state, emit, first_pass=first_pass)
        return state.consistent and len(state.ids) == first.numbers.total

    def _parts(self, window: Window, first: PageData) -> int:
        """Return how many sub-windows ``window`` should be read as (0: read it whole)."""
        if (
            next_page(first) is None
            or first.numbers.last_page <= self.split_pages
            or (window.end - window.start).total_seconds() < _SHORTEST_SPLIT_SECONDS
        ):
            return 0
        return math.ceil(first.numbers.last_page / self.split_pages)

    async def _read_rest(
        self,
        window: Window,
        admission: Admission,
        first: PageData,
        state: _Pass,
        emit: Emit,
        *,
        first_pass: bool,
    ) -> None:
        # Pages between fetch and hand-off, oldest first, each with its gate token.
        started: asyncio.Queue[tuple[asyncio.Task[PageData], bool]] = asyncio.Queue()
        ahead = asyncio.Semaphore(self.lookahead)
        numbers = range(first.numbers.current_page + 1, first.numbers.last_page + 1)

        async def launch(group: asyncio.TaskGroup) -> None:
            for number in numbers:
                await ahead.acquire()
                token = await admission.acquire()
                started.put_nowait((group.create_task(self.fetch(window, number)), token))

        held: list[tuple[asyncio.Task[PageData], bool]] = []
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
                    if next_page(page) is None:
                        break
            finally:
                launcher.cancel()
                while not started.empty():
                    held.append(started.get_nowait())
                for task, token in held:
                    task.cancel()
                    admission.release(token)

    async def _deliver(
        self, window: Window, data: PageData, state: _Pass, emit: Emit, first_pass: bool
    ) -> None:
        state.check(data)
        fresh = state.take(data.rows)
        if fresh is not data.rows:
            data = attrs.evolve(data, rows=fresh)
        if fresh or first_pass:
            await emit(RowsPage(window, data))


def _text_ids(rows: Sequence[Any]) -> list[str] | None:
    """Return the rows' ids when every row has a text id (the common case), else ``None``."""
    try:
        ids = [row["id"] for row in rows]
    except (KeyError, TypeError, IndexError):
        return None
    return ids if set(map(type, ids)) <= _TEXT else None


class _Pass:
    """What one read of a window saw: its ids and whether the numbers held still."""

    def __init__(self, first: PageData, seen: set[str]) -> None:
        self.first = first
        self.seen = seen
        # On a window's first pass every id seen is an id of this pass: one set serves.
        self.ids: set[str] = seen if not seen else set()
        self.consistent = True

    def take(self, rows: Sequence[Any]) -> Sequence[Any]:
        """Note the rows' ids; return ``rows`` itself when every one is new, else the new ones.

        A row without an id is always kept: structuring it will name the problem.
        """
        ids = _text_ids(rows)
        if ids is None:
            found = [row_id(row) if isinstance(row, Mapping) else None for row in rows]
            return self._take_one_by_one(rows, found)
        if self.ids is not self.seen:
            self.ids.update(ids)
        seen = self.seen
        if seen.isdisjoint(ids):
            before = len(seen)
            seen.update(ids)
            if len(seen) - before == len(ids):
                return rows
            seen.difference_update(ids)
        return self._take_one_by_one(rows, list(ids))

    def _take_one_by_one(self, rows: Sequence[Any], ids: list[str | None]) -> list[Any]:
        fresh = []
        for row, record_id in zip(rows, ids, strict=True):
            if record_id is None:
                fresh.append(row)
                continue
            if record_id not in self.seen:
                self.seen.add(record_id)
                fresh.append(row)
            self.ids.add(record_id)  # after the check: on a first pass, ids is seen
        return fresh

    def check(self, data: PageData) -> None:
        now, then = data.numbers, self.first.numbers
        if (now.total, now.last_page, now.per_page) != (then.total, then.last_page, then.per_page):
            self.consistent = False
