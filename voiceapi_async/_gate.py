"""PageGate: which of a stream's page fetches may start, and in what order.

A stream holds at most ``budget`` pages between the start of their request and
the moment they are handed on (fetching, or fetched and waiting for an earlier
page). Waiting fetches are admitted earliest window first, so the window the
consumer needs next is never starved by later ones. In order mode the window
being delivered (the head) passes without a token: later windows may hold every
token while they wait for it, and it must still be able to finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator


class PageGate:
    """Admits one stream's page fetches: a token budget, earliest window first."""

    def __init__(self, budget: int) -> None:
        if budget < 1:
            raise ValueError(f"a page budget must be 1 or more, not {budget}")
        self._free = budget
        self._head = -1
        self._order = itertools.count()
        # (rank, arrival, future): the future's result says whether a token came with it.
        self._waiting: list[tuple[int, int, asyncio.Future[bool]]] = []

    @property
    def free(self) -> int:
        """Tokens not held by any page."""
        return self._free

    async def admit(self, rank: int) -> bool:
        """Wait until a page of window ``rank`` may be fetched.

        Returns:
            True if a token was taken: hand it back with :meth:`release` once the
            page is handed on or abandoned. False if the window passed as the head.
        """
        if rank <= self._head:
            return False
        if self._free > 0:
            self._free -= 1
            return True
        admitted: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (rank, next(self._order), admitted))
        try:
            return await admitted
        except asyncio.CancelledError:
            if admitted.done() and not admitted.cancelled() and admitted.result():
                self.release()
            raise

    @contextlib.asynccontextmanager
    async def holding(self, rank: int) -> AsyncIterator[None]:
        """Hold admission for one page of window ``rank`` for the block's length."""
        token = await self.admit(rank)
        try:
            yield
        finally:
            if token:
                self.release()

    def release(self) -> None:
        """Hand a token back: to the earliest waiting window, or to the pool."""
        while self._waiting:
            _, _, admitted = heapq.heappop(self._waiting)
            if not admitted.done():
                admitted.set_result(True)
                return
        self._free += 1

    def advance(self, rank: int) -> None:
        """From now on, windows up to ``rank`` pass without a token."""
        self._head = rank
        still_waiting = []
        for entry in self._waiting:
            admitted = entry[2]
            if admitted.done():
                continue
            if entry[0] <= rank:
                admitted.set_result(False)
            else:
                still_waiting.append(entry)
        heapq.heapify(still_waiting)
        self._waiting = still_waiting
