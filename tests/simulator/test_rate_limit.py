"""The rate limit: a fixed or sliding window per token, its headers, 429 with Retry-After."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.simulator.conftest import TOKEN, FakeClock, api_headers, report, serve
from voiceapi_async import RateLimitError
from voiceapi_async.testing import Faults, run_simulator


@pytest.mark.asyncio
async def test_rate_limit_answers_429_with_retry_after() -> None:
    """Past rate_limit requests in a window the server answers 429 with Retry-After."""
    async with serve(rate_limit=3, rate_window=30.0) as (sim, session):
        allowed = [await report(session, sim, "calls") for _ in range(3)]
        refused = await report(session, sim, "calls")
    assert [reply.status for reply in allowed] == [200, 200, 200]
    assert [reply.headers["X-RateLimit-Limit"] for reply in allowed] == ["3", "3", "3"]
    assert [reply.headers["X-RateLimit-Remaining"] for reply in allowed] == ["2", "1", "0"]
    assert refused.status == 429
    assert refused.headers["X-RateLimit-Limit"] == "3"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert 1 <= int(refused.headers["Retry-After"]) <= 30
    body = refused.json()
    assert body["status"] == "ERROR"
    assert body["code"] == 429
    with pytest.raises(RateLimitError) as caught:
        refused.page()
    assert caught.value.retry_after == int(refused.headers["Retry-After"])
    assert sim.observed.requests[-1].status == 429


@pytest.mark.asyncio
async def test_rate_limit_window_resets() -> None:
    """Once the window has passed, requests succeed again, and not a moment before."""
    clock = FakeClock(1000.0)
    async with serve(rate_limit=2, rate_window=30.0) as (sim, session):
        sim._limiter.clock = clock  # the window's time, moved by hand
        statuses = [(await report(session, sim, "calls")).status for _ in range(3)]
        clock.now += 29.5
        early = await report(session, sim, "calls")
        clock.now += 0.5
        after = await report(session, sim, "calls")
    assert statuses == [200, 200, 429]
    assert early.status == 429
    assert early.headers["Retry-After"] == "1"
    assert after.status == 200
    assert after.headers["X-RateLimit-Remaining"] == "1"


@pytest.mark.asyncio
async def test_rate_limit_counts_only_authenticated_requests() -> None:
    """A rejected token does not use up the account's allowance."""
    async with serve(rate_limit=1, rate_window=30.0) as (sim, session):
        for _ in range(3):
            await report(session, sim, "calls", headers=api_headers("wrong"))
        reply = await report(session, sim, "calls")
    assert reply.status == 200


@pytest.mark.asyncio
async def test_rate_limit_zero_means_no_limit() -> None:
    """rate_limit=0 never answers 429 and sends no rate-limit headers."""
    async with serve(rate_limit=0) as (sim, session):
        replies = await asyncio.gather(*(report(session, sim, "calls") for _ in range(40)))
    assert {reply.status for reply in replies} == {200}
    assert all("X-RateLimit-Limit" not in reply.headers for reply in replies)


@pytest.mark.asyncio
async def test_default_rate_limit_is_a_thousand_a_minute() -> None:
    """The default limit is the documented 1000 requests a minute."""
    async with run_simulator(token=TOKEN) as sim, aiohttp.ClientSession() as session:
        reply = await report(session, sim, "calls")
    assert sim.config.rate_limit == 1000
    assert sim.config.rate_window == 60.0
    assert reply.headers["X-RateLimit-Limit"] == "1000"
    assert reply.headers["X-RateLimit-Remaining"] == "999"


@pytest.mark.asyncio
async def test_a_sliding_window_allows_the_limit_in_any_span_of_the_window() -> None:
    """Sliding: a request is allowed again once the oldest in the window is a window old."""
    clock = FakeClock(1000.0)
    async with serve(rate_limit=2, rate_window=30.0, rate_mode="sliding") as (sim, session):
        sim._limiter.clock = clock
        first = await report(session, sim, "calls")
        clock.now += 10
        second = await report(session, sim, "calls")
        clock.now += 10
        refused = await report(session, sim, "calls")  # at 20: two in the last 30 s
        clock.now += 10
        again = await report(session, sim, "calls")  # at 30: the first one has left
        clock.now += 5
        later = await report(session, sim, "calls")  # at 35: the one at 10 is still in
    assert [r.status for r in (first, second, refused, again, later)] == [200, 200, 429, 200, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in (first, second)] == ["1", "0"]
    assert refused.headers["Retry-After"] == "10"
    assert later.headers["Retry-After"] == "5"
    assert again.headers["X-RateLimit-Limit"] == "2"


@pytest.mark.asyncio
async def test_every_connection_of_a_token_shares_one_limit_with_headers_on_every_answer() -> None:
    """Two sessions on one token use one allowance; faulty answers carry the headers too."""
    faults = Faults(server_error=0.5, truncated=0.3)
    async with (
        serve(rate_limit=6, rate_window=30.0, faults=faults) as (sim, session),
        aiohttp.ClientSession() as other,
    ):
        replies = []
        for n in range(8):
            replies.append(await report(session if n % 2 else other, sim, "calls", page=n + 1))
    assert [reply.headers["X-RateLimit-Limit"] for reply in replies] == ["6"] * 8
    remaining = [int(reply.headers["X-RateLimit-Remaining"]) for reply in replies]
    assert remaining == [5, 4, 3, 2, 1, 0, 0, 0]
    assert [reply.status == 429 for reply in replies] == [False] * 6 + [True] * 2
    assert any(reply.status >= 500 or not reply.body.endswith(b"}") for reply in replies[:6])


@pytest.mark.asyncio
async def test_a_proxy_error_page_carries_the_headers_of_the_request_it_counted() -> None:
    """The HTML 502 fault counts against the window, so it tells the count too."""
    async with serve(rate_limit=2, rate_window=30.0, faults=Faults(html_error=1.0)) as (
        sim,
        session,
    ):
        replies = [await report(session, sim, "calls") for _ in range(3)]
    assert [reply.status for reply in replies] == [502, 502, 429]
    assert [reply.headers["X-RateLimit-Remaining"] for reply in replies] == ["1", "0", "0"]
    assert {reply.headers["X-RateLimit-Limit"] for reply in replies} == {"2"}
