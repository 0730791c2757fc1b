"""RecordStream: the one iterator type callers get back from a client."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator
from types import TracebackType
from typing import Any, Generic

import attrs

from voiceapi_async._errors import RequestTimeoutError, first_error
from voiceapi_async._models import Page, RecordT, Report

PAGE_QUEUE_SIZE = 8
"""Pages waiting for the consumer before producers pause (the back-pressure bound)."""

Produce = Callable[[Callable[[Any], Awaitable[None]]], Awaitable[None]]
"""Run the whole fetch, emitting pages (as ``make_page`` takes them) through the callback."""

_END = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class RecordStream(Generic[RecordT]):
    """The records of one report over one range, fetched lazily and concurrently.

    Iterate it (``async for record in stream``), take ``.batches(n)`` or ``.pages()``,
    or ``await stream.collect()`` (``await stream`` does the same). Nothing is fetched
    until iteration starts; a stream can be consumed once. Leaving the loop early,
    ``aclose()``, leaving ``async with stream:`` or cancelling the consumer stops all
    in-flight work; ``async with`` stops it deterministically, at the block's end.
    """

    def __init__(
        self,
        produce: Produce,
        *,
        report: Report,
        make_page: Callable[[Any], Page[RecordT]],
        description: str,
        max_items: int | None = None,
        deadline: float | None = None,
        on_page: Callable[[Page[RecordT]], None] | None = None,
    ) -> None:
        if max_items is not None and max_items < 0:
            raise ValueError(f"max_items must be 0 or more, not {max_items}")
        self._produce: Produce = produce
        self.report = report
        """The report the records come from."""
        self._make_page: Callable[[Any], Page[RecordT]] = make_page
        self._description = description
        self._max_items = max_items
        self._deadline = deadline
        self._on_page: Callable[[Page[RecordT]], None] | None = on_page
        self._started = False
        # A weak reference: a strong one would make stream and generator a cycle, and
        # a loop left by `break` would then be cleaned up by the garbage collector
        # (late, in any order) instead of at once by the event loop's finalizer hook.
        self._active: weakref.ref[AsyncGenerator[Any, None]] | None = None
        # Inside `async with stream:` the generator is held strongly so that leaving
        # the block can close it even after a `break` dropped the loop's reference.
        self._held: AsyncGenerator[Any, None] | None = None
        self._in_context = False

    def __repr__(self) -> str:
        return f"<RecordStream {self._description}>"

    # -- ways to consume -------------------------------------------------------------

    def pages(self) -> AsyncIterator[Page[RecordT]]:
        """Iterate page by page; each page carries its window and page number."""
        return self._start(self._limited_pages())

    def __aiter__(self) -> AsyncIterator[RecordT]:
        return self._start(self._records())

    def batches(self, size: int) -> AsyncIterator[list[RecordT]]:
        """Iterate lists of up to ``size`` records (the last may be shorter)."""
        if size < 1:
            raise ValueError(f"batch size must be 1 or more, not {size}")
        return self._start(self._batches(size))

    async def collect(self) -> list[RecordT]:
        """Fetch everything and return it as a list (mind the memory on long ranges)."""
        records: list[RecordT] = []
        async with contextlib.aclosing(self._start(self._limited_pages())) as pages:
            async for page in pages:
                records.extend(page.records)
        return records

    def __await__(self) -> Generator[Any, None, list[RecordT]]:
        return self.collect().__await__()

    async def aclose(self) -> None:
        """Stop fetching now: cancel in-flight requests and wait for them to end."""
        active = self._held or (self._active() if self._active is not None else None)
        self._active = self._held = None
        if active is not None:
            await active.aclose()

    async def __aenter__(self) -> RecordStream[RecordT]:
        self._in_context = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- machinery -------------------------------------------------------------------

    def _start(self, iterator: AsyncGenerator[Any, None]) -> AsyncGenerator[Any, None]:
        if self._started:
            raise RuntimeError(
                f"{self!r} was already consumed; call client.calls()/recordings() again"
            )
        self._started = True
        self._active = weakref.ref(iterator)
        if self._in_context:
            self._held = iterator
        return iterator

    async def _records(self) -> AsyncGenerator[RecordT, None]:
        async with contextlib.aclosing(self._limited_pages()) as pages:
            async for page in pages:
                for record in page.records:
                    yield record

    async def _batches(self, size: int) -> AsyncGenerator[list[RecordT], None]:
        batch: list[RecordT] = []
        async with contextlib.aclosing(self._limited_pages()) as pages:
            async for page in pages:
                for record in page.records:
                    batch.append(record)
                    if len(batch) == size:
                        yield batch
                        batch = []
        if batch:
            yield batch

    def _limited_pages(self) -> AsyncGenerator[Page[RecordT], None]:
        if self._max_items is None:
            return self._all_pages()
        return self._first_pages(self._max_items)

    async def _first_pages(self, remaining: int) -> AsyncGenerator[Page[RecordT], None]:
        if remaining == 0:
            return
        async with contextlib.aclosing(self._all_pages()) as pages:
            async for page in pages:
                if len(page.records) >= remaining:
                    yield _truncated(page, remaining)
                    return
                remaining -= len(page.records)
                yield page

    async def _all_pages(self) -> AsyncGenerator[Page[RecordT], None]:
        queue: asyncio.Queue[Any] = asyncio.Queue(PAGE_QUEUE_SIZE)
        driver = asyncio.create_task(self._drive(queue), name=f"voiceapi_async {self._description}")
        try:
            while (item := await queue.get()) is not _END:
                if isinstance(item, _Failure):
                    raise item.error
                page = self._make_page(item)  # records are made as they are taken
                if self._on_page is not None:
                    self._on_page(page)
                yield page
        finally:
            driver.cancel()
            await asyncio.wait({driver})
            if not driver.cancelled():
                driver.exception()  # retrieved: the failure already reached the consumer

    async def _drive(self, queue: asyncio.Queue[Any]) -> None:
        try:
            async with asyncio.timeout(self._deadline):
                await self._produce(queue.put)
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            await queue.put(
                _Failure(
                    RequestTimeoutError(
                        f"{self._description}: deadline of {self._deadline:g}s passed"
                    )
                )
            )
            return
        except BaseException as exc:  # handed to the consumer, who raises it
            await queue.put(_Failure(first_error(exc)))
            return
        await queue.put(_END)


def _truncated(page: Page[RecordT], count: int) -> Page[RecordT]:
    return attrs.evolve(page, records=list(page.records[:count]))
