"""Many windows at once: bounded concurrency, order, and back-pressure.

Fan-out owns the stream's page budget (a :class:`~voiceapi_async._gate.PageGate`)
and hands each window's reader the :class:`~voiceapi_async._gate.Admission` of
that window. Pages travel to the consumer through one bounded queue. In order mode each
window writes into its own small queue and a merger forwards them window by
window, so at most ``max_windows`` windows are read or buffered at a time and a
slow consumer holds every producer back. Without order, windows write straight
into the shared queue as their pages complete.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
)
from typing import Any, Protocol, TypeVar

from voiceapi_async._gate import Admission, PageGate
from voiceapi_async._models import Window
from voiceapi_async._sizing import Span

PAGES_PER_WINDOW_BUFFER = 2
"""Pages a window may have ready before the consumer takes them (order mode)."""


W = TypeVar("W", bound=Window | Span)
W_contra = TypeVar("W_contra", bound=Window | Span, contravariant=True)


class ReadWindow(Protocol[W_contra]):
    """Read one window (or span), emitting its pages through the callback."""

    def __call__(
        self, span: W_contra, emit: Callable[[Any], Awaitable[None]], admission: Admission, /
    ) -> Awaitable[None]:
        """Read ``span``, each page fetch admitted by ``admission``, emitting its pages."""


_WINDOW_DONE = object()


async def run_windows(
    windows: Iterable[W] | AsyncIterable[W],
    read: ReadWindow[W],
    emit: Callable[[Any], Awaitable[None]],
    *,
    max_windows: int,
    ordered: bool,
    page_budget: int,
) -> None:
    """Read every window (or span), at most ``max_windows`` at once, emitting their pages.

    ``windows`` is iterated lazily, one as a slot frees up: a span planner sizes each
    span from what the earlier ones told.

    At most ``page_budget`` pages are between fetch and hand-off at a time, earliest
    window first. With ``ordered`` the pages come window by window, each window's
    pages in order; otherwise as they complete. Returns when every window is done;
    the first error cancels the rest and propagates.
    """
    gate = PageGate(page_budget)
    slots = asyncio.Semaphore(max_windows)
    if not ordered:
        async with asyncio.TaskGroup() as group, _spans(windows) as spans:
            rank = 0
            async for span in spans:
                weight = await _take(slots, span, max_windows)
                group.create_task(
                    _release_after(slots, weight, read, span, emit, gate.admission(rank))
                )
                rank += 1
        return
    queues: asyncio.Queue[tuple[int, asyncio.Queue[Any], int] | None] = asyncio.Queue()

    async def produce(span: W, rank: int, queue: asyncio.Queue[Any]) -> None:
        await read(span, queue.put, gate.admission(rank))
        await queue.put(_WINDOW_DONE)

    async def launch(group: asyncio.TaskGroup) -> None:
        rank = 0
        async with _spans(windows) as spans:
            async for span in spans:
                weight = await _take(slots, span, max_windows)
                queue: asyncio.Queue[Any] = asyncio.Queue(PAGES_PER_WINDOW_BUFFER)
                queues.put_nowait((rank, queue, weight))
                group.create_task(produce(span, rank, queue))
                rank += 1
        queues.put_nowait(None)

    async def merge() -> None:
        while (head := await queues.get()) is not None:
            rank, queue, weight = head
            gate.advance(rank)
            while (page := await queue.get()) is not _WINDOW_DONE:
                await emit(page)
            for _ in range(weight):
                slots.release()

    async with asyncio.TaskGroup() as group:
        group.create_task(launch(group))
        group.create_task(merge())


@contextlib.asynccontextmanager
async def _spans(windows: Iterable[W] | AsyncIterable[W]) -> AsyncIterator[AsyncIterator[W]]:
    """Iterate ``windows`` asynchronously, closing a span planner after."""
    if isinstance(windows, AsyncIterable):
        iterator = aiter(windows)
        try:
            yield iterator
        finally:
            closer = getattr(iterator, "aclose", None)
            if closer is not None:
                await closer()
        return

    async def one_by_one() -> AsyncGenerator[W, None]:
        for window in windows:
            yield window

    async with contextlib.aclosing(one_by_one()) as spans:
        yield spans


async def _take(slots: asyncio.Semaphore, span: Window | Span, most: int) -> int:
    """Take the slots a window or span weighs (at most ``most``); return how many.

    Only the launcher takes slots, one at a time, so a heavy span waits for earlier
    ones to finish and never starves them.
    """
    weight = min(span.weight, most) if isinstance(span, Span) else 1
    for _ in range(weight):
        await slots.acquire()
    return weight


async def _release_after(
    slots: asyncio.Semaphore,
    weight: int,
    read: ReadWindow[W],
    window: W,
    emit: Callable[[Any], Awaitable[None]],
    admission: Admission,
) -> None:
    # The read starts inside the task: a task cancelled before it runs leaves no
    # coroutine that was never awaited.
    try:
        await read(window, emit, admission)
    finally:
        for _ in range(weight):
            slots.release()
