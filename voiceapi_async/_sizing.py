"""Request windows sized to the data: the days callers see, the spans the server is asked for.

Callers see days; the quota is spent per request. A stream's days are grouped into
*spans*: several sparse days in one request window, one day alone, or a dense day
cut into parts planned before any of its pages is fetched. The planner learns from
the ``total`` of every span's first page how many records a second of the range
holds, and sizes the next span to about :data:`SPAN_PAGES` pages of the page size
the server applies.

The first span of a stream is the *probe*: the range's first month. When
its records fit (at most :data:`SPAN_LIMIT` spans' worth) it is read whole, which
is the cheapest read there is; otherwise it is declined after its first page and
its days are planned again from what that page told.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import math
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator

import attrs

from voiceapi_async._models import Window
from voiceapi_async._windows import split_window

SPAN_PAGES = 8
"""Pages a multi-day span is sized to hold (its last page is the only partial one)."""
MAX_SPAN_RECORDS = 8_000
"""Records a multi-day span is sized to hold at most: its rows wait in memory until
its last page is in, since the server returns a range's records in no order."""
SPAN_LIMIT = 2
"""A multi-day span is read only when it holds at most this many times its target."""
MAX_SPAN_DAYS = 366
"""Days one span covers at most."""
PROBE_DAYS = 31
"""Days the probe covers at most: a server that answers a range as one bare list
sends all of it at once, and a month of a busy account stays well inside
``max_response_bytes``."""
PAGES_A_SLOT = 2
"""Pages of a multi-day span that count as one window read at once (see :attr:`Span.weight`)."""
MAX_PARTS = 16
"""Most parts one split makes; a part that still holds too many pages is split again."""


def parts_for(pages: float, split_pages: int) -> int:
    """The parts a window of ``pages`` pages is read in (0: whole), at most :data:`MAX_PARTS`."""
    if pages <= split_pages:
        return 0
    return min(math.ceil(pages / split_pages), MAX_PARTS)


@attrs.frozen
class Span:
    """One request window and the caller's days it covers.

    ``window`` is what the server is asked for; ``days`` are the caller's windows
    in it, in order (one for a day read alone). ``parts`` above 1 reads a single day
    as that many sub-windows, planned from the records its neighbours held.
    """

    window: Window
    days: tuple[Window, ...]
    parts: int = 0
    probe: bool = False
    weight: int = 1
    """The stream's window slots the span takes: a multi-day span's rows wait in
    memory until its last page is in, so one that should fill many pages counts as
    several windows read at once."""

    @classmethod
    def of(
        cls, days: Iterable[Window], *, parts: int = 0, probe: bool = False, weight: int = 1
    ) -> Span:
        """Return the span over consecutive ``days``."""
        days = tuple(days)
        window = Window(days[0].report, days[0].start, days[-1].end)
        return cls(window, days, parts, probe, weight)

    def pieces(self) -> list[Window]:
        """The windows to read: the span itself, or a single day's planned parts."""
        return split_window(self.window, self.parts) if self.parts > 1 else [self.window]


class Outcome(enum.Enum):
    """What became of a probe."""

    READ = "read"
    DECLINED = "declined"


def seconds(window: Window) -> int:
    """The number of seconds ``window`` covers (both ends inclusive)."""
    return int((window.end - window.start).total_seconds()) + 1


class Sizing:
    """What one stream knows of its range's density, and how it sizes spans from it.

    Args:
        page_size: the page size the server applies (as far as the client knows).
        split_pages: a day expected to hold more pages than this is read in parts.
    """

    def __init__(self, page_size: int, *, split_pages: int) -> None:
        self.page_size = page_size
        self.split_pages = split_pages
        self.rate: float | None = None
        """Records per second, from the latest first page (None: nothing seen yet)."""
        self._probe: asyncio.Future[Outcome] | None = None

    @property
    def target(self) -> int:
        """Records a multi-day span is sized to hold."""
        return max(self.page_size, min(self.page_size * SPAN_PAGES, MAX_SPAN_RECORDS))

    def fits(self, total: int) -> bool:
        """Whether a multi-day span of ``total`` records is read whole."""
        return total <= self.target * SPAN_LIMIT

    def observe(self, window: Window, total: int, page_size: int | None) -> None:
        """Note a first page: ``window`` holds ``total`` records, in pages of ``page_size``."""
        if page_size is not None and page_size > 0:
            self.page_size = page_size
        self.rate = total / seconds(window)

    def probe_outcome(self, outcome: Outcome) -> None:
        """Say what became of the probe (its reader calls this after its first page)."""
        if self._probe is not None and not self._probe.done():
            self._probe.set_result(outcome)

    def next_span(self, days: deque[Window]) -> Span:
        """Take the next span's days off the front of ``days`` (never empty)."""
        rate = self.rate or 0.0
        taken = [days.popleft()]
        expected = rate * seconds(taken[0])
        while days and len(taken) < MAX_SPAN_DAYS:
            more = rate * seconds(days[0])
            if expected + more > self.target:
                break
            expected += more
            taken.append(days.popleft())
        if len(taken) == 1:
            return Span.of(taken, parts=self.parts_for(expected))
        return Span.of(taken, weight=max(1, math.ceil(expected / self.page_size / PAGES_A_SLOT)))

    def parts_for(self, expected: float) -> int:
        """The parts a single day of ``expected`` records is read in (0: whole)."""
        return parts_for(expected / self.page_size, self.split_pages)

    def split(self, span: Span) -> list[Span]:
        """Plan ``span``'s days again from what is known now (a span that held too much)."""
        days = deque(span.days)
        spans = []
        while days:
            spans.append(self.next_span(days))
        if len(spans) == 1 and len(spans[0].days) > 1:  # the estimate still says one span
            spans = [Span.of([day]) for day in span.days]
        return spans

    async def plan(self, days: Iterable[Window]) -> AsyncIterator[Span]:
        """Yield the spans of ``days`` (iterated lazily), sizing each from what is known.

        The first is the probe; the rest wait for its first page.
        """
        source: Iterator[Window] = iter(days)
        ahead: deque[Window] = deque(itertools.islice(source, PROBE_DAYS))
        if not ahead:
            return
        self._probe = asyncio.get_running_loop().create_future()
        yield Span.of(ahead, probe=True, weight=SPAN_PAGES * SPAN_LIMIT // PAGES_A_SLOT)
        if await self._probe is Outcome.READ:
            ahead.clear()
        while True:
            ahead.extend(itertools.islice(source, MAX_SPAN_DAYS - len(ahead)))
            if not ahead:
                return
            yield self.next_span(ahead)
