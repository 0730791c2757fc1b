"""PageGate: which of a stream's page fetches may start, and in what order.

Fan-out owns a stream's gate and hands each window's reader an
:class:`Admission`, the only part of the gate that paging sees. A stream holds
at most ``budget`` pages between the start of their request and the moment they
are handed on (fetching, or fetched and waiting for an earlier page). Waiting
fetches are admitted earliest window first, so the window the consumer needs
next is never starved by later ones. In order mode the window being delivered
(the head) passes without a token: later windows may hold every token while they
wait for it, and it must still be able to finish.
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
        self._budget = budget
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

    def resize(self, budget: int) -> None:
        """Change the budget: more tokens are handed out at once, fewer as they come back."""
        if budget < 1:
            raise ValueError(f"a page budget must be 1 or more, not {budget}")
        grown, self._budget = budget - self._budget, budget
        if grown < 0:
            self._free += grown  # below zero: tokens coming back pay the difference first
        for _ in range(grown):
            self.release()

    def release(self) -> None:
        """Hand a token back: to the earliest waiting window, or to the pool."""
        if self._free < 0:
            self._free += 1
            return
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

    def admission(self, rank: int) -> Admission:
        """Return the admission of the ``rank``-th window of the stream."""
        return Admission(self, rank)


class Admission:
    """Admits the page fetches of one window: what paging needs of the stream's gate."""

    __slots__ = ("_gate", "_rank")

    def __init__(self, gate: PageGate, rank: int) -> None:
        self._gate = gate
        self._rank = rank

    async def acquire(self) -> bool:
        """Wait until one more page of the window may be fetched.

        Returns:
            Whether a token was taken: give it back with :meth:`release`.
        """
        return await self._gate.admit(self._rank)

    def release(self, token: bool) -> None:
        """Give back what :meth:`acquire` returned, once the page is handed on or abandoned."""
        if token:
            self._gate.release()

    @contextlib.asynccontextmanager
    async def holding(self) -> AsyncIterator[None]:
        """Hold admission for one page for the block's length."""
        token = await self.acquire()
        try:
            yield
        finally:
            self.release(token)
