"""Rate pacing from the server's own numbers: how long the next request should wait.

The API limits a token, not a process, to ``X-RateLimit-Limit`` requests in a fixed
window (a minute) that starts with the token's first request, and tells on every
answer how many are left (``X-RateLimit-Remaining``). Every process on the token
reads the same shared count, so pacing by it needs no other coordination:

- After each answer the pacer knows the limit, what is left (minus its own requests
  sent since) and when the window ends. It estimates the end from the first answer
  it sees in a window, plus the window's length; that is never earlier than the
  true end, since the window started before the server counted that request. A 429
  sets the end from its ``Retry-After``. A count that jumps up means the window
  reset before the estimate said: a new one is dated from that answer.
- It spreads what is left evenly over the time left: ``b`` requests over ``t``
  seconds go ``t / (b + 1)`` apart, so the last goes out before the window ends. As
  others on the token use the count up, the spacing grows; it never plans above
  the announced limit.
- **Bulk** requests leave a reserve (``RESERVE_PERCENT`` of the limit): at that
  many left they wait for the next window, so interactive requests on the same
  token still get through. Interactive requests may use the reserve and, after a
  pause, may go in a short burst (within the budget and the reserve), so a few
  pages of a query do not queue behind the spacing. Within the reserve, where
  interactive clients compete for a window's last requests, a client that is busy
  (its last answer younger than two spacings) also takes off what the others have
  likely used since that answer, at the rate they used it between its answers, so
  busy clients do not all spend the last request. The estimate never applies to a
  client back from a pause (it goes on the count it last saw, and its next answer
  tells the truth) nor to bulk requests (the reserve absorbs their overshoot), so
  it cannot hold a client back on guesses alone.
- Until the server announces a limit, the pacer assumes ``per_minute`` a minute.
  An explicit ``cap`` a minute is never exceeded in any 60 seconds, whatever the
  server announces.
- Absurd header values (negative, non-numeric, a remaining count above the limit,
  a limit above ``MAX_LIMIT``) are ignored, as if absent.

Pure: no I/O and no awaiting; the clock is injected. :class:`~voiceapi_async._transport.Transport`
asks :meth:`Pacer.delay` before each request, sleeps, asks again, then takes a
:meth:`Pacer.issue` ticket and reports the answer's headers with :meth:`Pacer.answered`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs

DEFAULT_PER_MINUTE = 1000
"""Requests a minute assumed until the server announces its limit (the documented one)."""
RESERVE_PERCENT = 10
"""The share of the limit bulk requests leave for interactive ones."""
MAX_LIMIT = 10_000_000
"""An announced limit above this is not believed."""
_RATE_WEIGHT = 0.3
_FRESH_SPACINGS = 2.0
_DIGITS = 12


def parse_count(value: str | None) -> int | None:
    """Read a rate-limit header: a whole number in ASCII digits, else ``None``.

    Signs, fractions, exponents, several values joined by a proxy and anything
    longer than 12 digits are unusable (``None``), never guessed at.
    """
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > _DIGITS or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def reserve_for(limit: int) -> int:
    """Return how many requests of a window bulk requests leave unused."""
    return limit * RESERVE_PERCENT // 100


@attrs.frozen
class Ticket:
    """One request the pacer let through: hand it back with the answer."""

    seq: int
    """The request's number, from 1, in the order the pacer let them through."""


@attrs.frozen
class Quota:
    """What the pacer believes about the token's quota at one moment."""

    limit: int
    """Requests a window: announced by the server, or assumed until it does."""
    available: int
    """Requests left in the window: the last answer's count, minus this client's
    requests sent since."""
    left: float
    """Seconds until the window ends (a whole window when the next request starts one)."""
    announced: bool
    """Whether ``limit`` came from the server."""


class Pacer:
    """Paces one client's requests by the quota its token's answers announce.

    Args:
        window: the server's window in seconds (a minute on the API).
        per_minute: requests a minute assumed until the server announces a limit.
        cap: requests a minute never exceeded in any 60 seconds (None: no cap).
        burst: the most interactive requests let through at once after a pause
            (also bounded by the reserve and the budget).
        clock: monotonic seconds.
    """

    def __init__(
        self,
        *,
        window: float = 60.0,
        per_minute: int = DEFAULT_PER_MINUTE,
        cap: int | None = None,
        burst: int = 16,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if window <= 0 or per_minute < 1 or burst < 1 or (cap is not None and cap < 1):
            raise ValueError("window, per_minute, burst and cap must be positive")
        self._window = window
        self._assumed = max(1, round(per_minute * window / 60.0))
        self._cap_spacing = None if cap is None else 60.0 / max(1, cap - 1)
        self._burst = burst
        self._clock = clock
        self._limit: int | None = None
        self._remaining = 0
        self._basis = 0
        """The ticket whose answer gave ``_remaining``; later tickets are subtracted."""
        self._basis_at = 0.0
        self._others_used = 0.0
        """The usual count others on the token used between two of this client's answers."""
        self._answer_gap = 0.0
        """The usual seconds between two of this client's answers in a window."""
        self._issued = 0
        self._window_seq = 1
        """The first ticket of the current window: answers to earlier ones are stale."""
        self._reset_at: float | None = None
        self._confirmed = False
        """Whether ``_reset_at`` comes from an answer, not from an assumed new window."""
        self._outstanding: set[int] = set()
        self._tokens = float(burst)
        self._tokens_at = clock()
        self._last_issue: float | None = None

    # -- what the transport asks -----------------------------------------------------

    def quota(self) -> Quota:
        """Return what the pacer believes now."""
        return self._quota(self._clock())

    def delay(self, *, bulk: bool) -> float:
        """Return the seconds the next request should wait (0: it may go now)."""
        now = self._clock()
        quota = self._quota(now)
        wait = 0.0
        if self._cap_spacing is not None and self._last_issue is not None:
            wait = self._last_issue + self._cap_spacing - now
        known = self._known(quota, bulk)
        if known <= 0:
            assert self._reset_at is not None  # a fresh window always has a budget
            until_reset = self._reset_at - now
            if until_reset <= 0:  # past the end but held (see _holding): look again soon
                until_reset = self._window / quota.limit
            return max(wait, until_reset)
        budget = self._estimated(now, quota, known, bulk)
        if budget <= 0:  # others have likely taken the rest: look again once that is stale
            return max(wait, self._stale_at(known) - now)
        interval = quota.left / (budget + 1)
        tokens = self._tokens_now(now, interval, bulk)
        if tokens < 1.0:
            wait = max(wait, (1.0 - tokens) * interval)
        return max(0.0, wait)

    def issue(self, *, bulk: bool) -> Ticket:
        """Let one request through now (after :meth:`delay` said 0) and number it."""
        now = self._clock()
        if self._starts_window(now):
            self._remaining = self._limit if self._limit is not None else self._assumed
            self._basis = self._issued
            self._basis_at = now
            self._window_seq = self._issued + 1
            self._reset_at = now + self._window
            self._confirmed = False
        quota = self._quota(now)
        budget = self._estimated(now, quota, self._known(quota, bulk), bulk)
        interval = quota.left / (max(budget, 0.0) + 1)
        self._tokens = max(0.0, self._tokens_now(now, interval, bulk) - 1.0)
        self._tokens_at = now
        self._last_issue = now
        self._issued += 1
        self._outstanding.add(self._issued)
        return Ticket(self._issued)

    def answered(
        self,
        ticket: Ticket,
        *,
        status: int,
        limit: str | None,
        remaining: str | None,
        retry_after: float | None = None,
    ) -> None:
        """Learn from an answer's status and headers (as they came, or None when absent).

        Args:
            ticket: the request's ticket.
            status: the HTTP status.
            limit: the ``X-RateLimit-Limit`` header.
            remaining: the ``X-RateLimit-Remaining`` header.
            retry_after: the seconds a 429 asks to wait (None: 1 s); at most a window.
        """
        now = self._clock()
        self._settle(now)
        self._outstanding.discard(ticket.seq)
        announced = parse_count(limit)
        if announced is not None and 1 <= announced <= MAX_LIMIT:
            self._limit = announced
        if ticket.seq < self._window_seq:
            return  # sent before the current window began: it tells about an old one
        if status == 429:
            wait = 1.0 if retry_after is None else retry_after
            self._remaining = 0
            self._basis = self._issued
            self._basis_at = now
            self._window_seq = self._issued + 1
            self._reset_at = now + min(max(wait, 0.0), self._window)
            self._confirmed = True
            return
        left = parse_count(remaining)
        if left is None or self._limit is None or left > self._limit:
            return
        rose = left > self._remaining + max(2, self._limit // 50)
        if rose or not self._confirmed:
            self._reset_at = now + self._window
            self._confirmed = True
            self._window_seq = ticket.seq
        elif ticket.seq < self._basis:
            return  # an older request's count: the newer one already said more
        else:
            self._learn_others(now, self._remaining - left - (ticket.seq - self._basis))
        self._remaining = left
        self._basis = ticket.seq
        self._basis_at = now

    def abandoned(self, ticket: Ticket) -> None:
        """Forget a request that got no answer (it still counts against the window)."""
        self._settle(self._clock())
        self._outstanding.discard(ticket.seq)

    # -- the model -------------------------------------------------------------------

    def _learn_others(self, now: float, used: int) -> None:
        """Fold in what others used between the last answer and this one."""
        elapsed = now - self._basis_at
        weight = _RATE_WEIGHT if self._answer_gap else 1.0  # the first takes over the zeros
        self._others_used += weight * (max(0, used) - self._others_used)
        self._answer_gap += weight * (elapsed - self._answer_gap)

    def _known(self, quota: Quota, bulk: bool) -> int:
        """Return the requests this one may still plan by the last count (0 or less: none)."""
        return quota.available - (reserve_for(quota.limit) if bulk else 0)

    def _estimated(self, now: float, quota: Quota, known: int, bulk: bool) -> float:
        """Return ``known``, less what others have likely used since the last answer.

        Only for a busy interactive client within the reserve (see the module's
        docstring); 0 or less means the others have likely taken the rest.
        """
        if bulk or not 0 < known <= reserve_for(quota.limit) or self._answer_gap <= 0:
            return float(known)
        if now >= self._stale_at(known):
            return float(known)  # back from a pause: go on the count last seen
        return known - self._others_used * (now - self._basis_at) / self._answer_gap

    def _stale_at(self, known: int) -> float:
        """Return when the last answer becomes older than two spacings of ``known``.

        Solves ``t - basis_at = 2 * (reset_at - t) / (known + 1)`` for ``t``.
        """
        assert self._reset_at is not None  # only asked within a known window
        spacings = _FRESH_SPACINGS
        return (self._basis_at * (known + 1) + spacings * self._reset_at) / (known + 1 + spacings)

    def _quota(self, now: float) -> Quota:
        limit = self._limit if self._limit is not None else self._assumed
        announced = self._limit is not None
        if self._starts_window(now):
            return Quota(limit, limit, self._window, announced)
        assert self._reset_at is not None
        available = min(self._remaining, limit) - (self._issued - self._basis)
        left = self._reset_at - now
        if left <= 0:  # held: a window assumed to start has had no answer yet
            left = self._window
        return Quota(limit, available, left, announced)

    def _starts_window(self, now: float) -> bool:
        """Whether the next request starts a new window (as far as the pacer knows)."""
        if self._reset_at is None:
            return True
        return now >= self._reset_at and not self._holding()

    def _holding(self) -> bool:
        """Whether an assumed window still waits for its first answer.

        Until one comes, the pacer cannot tell when that window really began, so it
        does not assume another (answers slower than a window are rare, but then
        this keeps the client from sending a second window's worth into the first).
        """
        return not self._confirmed and any(seq >= self._window_seq for seq in self._outstanding)

    def _tokens_now(self, now: float, interval: float, bulk: bool) -> float:
        """Return the credit now: one per ``interval`` since the last event.

        It grows past one only while nothing is in flight (up to the burst, within
        the reserve), so a busy client whose answers come back in a clump does not
        burst; credit already earned is kept.
        """
        if bulk:
            ceiling = 1.0
        elif self._outstanding:
            ceiling = max(1.0, self._tokens)
        else:
            limit = self._limit if self._limit is not None else self._assumed
            ceiling = float(max(1, min(self._burst, reserve_for(limit))))
        return min(ceiling, self._tokens + (now - self._tokens_at) / interval)

    def _settle(self, now: float) -> None:
        """Bank the credit earned up to now, before what is in flight changes."""
        quota = self._quota(now)
        known = self._known(quota, False)
        interval = quota.left / (max(self._estimated(now, quota, known, False), 0.0) + 1)
        self._tokens = self._tokens_now(now, interval, False)
        self._tokens_at = now
