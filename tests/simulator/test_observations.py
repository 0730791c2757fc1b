"""What the simulator observes: the request log, requests in flight and request rates."""

from __future__ import annotations

import asyncio

import pytest

from tests.simulator.conftest import FIXED_NOW, MAR5, fixed_clock, report, serve
from voiceapi_async.testing import Faults, Observations


@pytest.mark.asyncio
async def test_request_log_records_what_clients_did() -> None:
    """Each request is logged with method, path, params, auth mode, time, status and fault."""
    async with serve(clock=fixed_clock()) as (sim, session):
        await report(session, sim, "recordings", page=2, per_page=5)
        await report(session, sim, "calls", headers={"Accept": "application/json"})
    ok, refused = sim.observed.requests
    assert ok.method == "GET"
    assert ok.path == "/api/v2/voice/recordings"
    assert dict(ok.params) == {"datetime[r.created_at]": MAR5, "page": "2", "per_page": "5"}
    assert ok.auth == "bearer"
    assert ok.time == FIXED_NOW
    assert ok.status == 200
    assert ok.fault is None
    assert refused.auth is None
    assert refused.status == 401
    assert sim.observed.report_requests("recordings") == [ok]
    assert sim.observed.report_requests() == [ok, refused]


@pytest.mark.asyncio
async def test_max_in_flight_reflects_concurrent_requests() -> None:
    """Eight requests held open together show as max_in_flight 8, then none in flight."""
    slow = Faults(latency_ms=300, latency_spread=0)
    async with serve(faults=slow) as (sim, session):
        replies = await asyncio.gather(
            *(report(session, sim, "calls", page=n) for n in range(1, 9))
        )
    assert {reply.status for reply in replies} == {200}
    assert sim.observed.max_in_flight == 8
    assert sim.observed.in_flight == 0


@pytest.mark.asyncio
async def test_sequential_requests_are_never_concurrent() -> None:
    """One request after another never has more than one in flight."""
    async with serve() as (sim, session):
        for page in (1, 2, 3):
            await report(session, sim, "calls", page=page)
    assert sim.observed.max_in_flight == 1


@pytest.mark.asyncio
async def test_request_rates_are_counted() -> None:
    """max_per_minute counts every request of a quick burst; max_per_second is within it."""
    async with serve() as (sim, session):
        for _ in range(6):
            await report(session, sim, "calls")
    assert sim.observed.max_per_minute == 6
    assert 1 <= sim.observed.max_per_second <= 6


def test_rate_windows_slide() -> None:
    """max_per_second and max_per_minute count the busiest sliding 1 s and 60 s windows."""
    observed = Observations()
    for moment in (0.0, 0.2, 0.4, 1.3, 1.35, 1.39, 1.42, 30.0, 61.5):
        observed.arrived(moment)
        observed.in_flight -= 1
    assert observed.max_per_second == 4
    assert observed.max_per_minute == 8
    assert observed.in_flight == 0
