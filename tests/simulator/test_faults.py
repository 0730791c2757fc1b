"""Faults: how each one is served over HTTP, and how fates are drawn from the seed."""

from __future__ import annotations

import asyncio
import contextlib
import statistics

import aiohttp
import orjson
import pytest

from tests.simulator.conftest import MAR5, api_headers, report, serve
from voiceapi_async import ResponseFormatError, ServerError
from voiceapi_async.testing import FAULT_KINDS, Fate, Faults, VoiceSimulator

# -- over HTTP -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_server_error_fault_is_a_json_5xx() -> None:
    """A server_error fault answers a JSON error body with status 500, 502 or 503."""
    async with serve(faults=Faults(server_error=1.0)) as (sim, session):
        replies = [await report(session, sim, "calls", page=n) for n in range(1, 21)]
    assert {reply.status for reply in replies} == {500, 502, 503}
    for reply in replies:
        body = reply.json()
        assert body["status"] == "ERROR"
        assert body["code"] == reply.status
        with pytest.raises(ServerError):
            reply.page()
    assert sim.observed.faults == {"server_error": 20}
    assert {r.fault for r in sim.observed.requests} == {"server_error"}


@pytest.mark.asyncio
async def test_reset_fault_cuts_the_connection_mid_body() -> None:
    """A reset fault sends the headers and part of the body, then drops the connection."""
    async with serve(faults=Faults(reset=1.0)) as (sim, session):
        for page in (1, 2):
            async with session.get(
                sim.base_url + "voice/calls",
                params={"datetime[end_at]": MAR5, "page": str(page)},
                headers=api_headers(),
            ) as response:
                assert response.status == 200
                with pytest.raises(aiohttp.ClientPayloadError):
                    await response.read()
    assert sim.observed.faults == {"reset": 2}
    assert [r.fault for r in sim.observed.requests] == ["reset", "reset"]


@pytest.mark.asyncio
async def test_truncated_fault_is_a_complete_200_with_cut_json() -> None:
    """A truncated fault is a well-formed HTTP 200 whose JSON body ends early."""
    async with serve(faults=Faults(truncated=1.0)) as (sim, session):
        reply = await report(session, sim, "calls")
    assert reply.status == 200
    assert int(reply.headers["Content-Length"]) == len(reply.body)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(reply.body)
    with pytest.raises(ResponseFormatError) as caught:
        reply.page()
    assert caught.value.truncated is True
    assert sim.observed.faults == {"truncated": 1}


@pytest.mark.asyncio
async def test_error_in_200_fault_is_a_failure_inside_success() -> None:
    """An error_in_200 fault delivers {"status": "ERROR", "code": 500} with HTTP 200."""
    async with serve(faults=Faults(error_in_200=1.0)) as (sim, session):
        reply = await report(session, sim, "calls")
    assert reply.status == 200
    body = reply.json()
    assert body["status"] == "ERROR"
    assert body["code"] == 500
    with pytest.raises(ServerError):
        reply.page()
    assert sim.observed.faults == {"error_in_200": 1}


@pytest.mark.asyncio
async def test_html_error_fault_is_a_proxy_502_page() -> None:
    """An html_error fault is a 502 with a text/html body, as a proxy sends."""
    async with serve(faults=Faults(html_error=1.0)) as (sim, session):
        reply = await report(session, sim, "calls")
    assert reply.status == 502
    assert reply.headers["Content-Type"].startswith("text/html")
    assert reply.body.startswith(b"<html")
    with pytest.raises(ServerError):
        reply.page()
    assert sim.observed.faults == {"html_error": 1}


@pytest.mark.asyncio
async def test_stall_fault_hangs_the_body_until_the_client_times_out() -> None:
    """A stall fault sends headers and some body, then nothing: a reading client times out."""
    timeout = aiohttp.ClientTimeout(total=None, sock_read=0.2)
    async with serve(faults=Faults(stall=1.0, stall_seconds=0.5)) as (sim, session):
        response = await session.get(
            sim.base_url + "voice/calls",
            params={"datetime[end_at]": MAR5},
            headers=api_headers(),
            timeout=timeout,
        )
        async with response:
            assert response.status == 200
            with pytest.raises(asyncio.TimeoutError):
                await response.read()
    assert sim.observed.faults == {"stall": 1}


@pytest.mark.asyncio
async def test_latency_delays_but_does_not_break_answers() -> None:
    """With latency_ms set every request still succeeds, with no fault recorded."""
    async with serve(faults=Faults(latency_ms=5)) as (sim, session):
        replies = [await report(session, sim, "calls", page=n) for n in (1, 2, 3)]
    assert [reply.status for reply in replies] == [200, 200, 200]
    assert sim.observed.faults == {}
    assert [r.fault for r in sim.observed.requests] == [None, None, None]


@pytest.mark.asyncio
async def test_every_fault_kind_is_counted() -> None:
    """observed.faults counts each kind served, and the request log names it."""
    mixed = Faults(server_error=0.2, truncated=0.2, error_in_200=0.2, html_error=0.2)
    async with serve(faults=mixed) as (sim, session):
        for page in range(1, 41):
            await report(session, sim, "calls", page=page)
    served = [r.fault for r in sim.observed.requests if r.fault is not None]
    assert sum(sim.observed.faults.values()) == len(served)
    assert set(sim.observed.faults) == {"server_error", "truncated", "error_in_200", "html_error"}
    for kind in FAULT_KINDS:
        assert sim.observed.faults[kind] == served.count(kind)


FaultLog = list[tuple[str, tuple[tuple[str, str], ...], int, str | None]]


async def _fault_sequence(seed: int) -> FaultLog:
    mixed = Faults(server_error=0.2, reset=0.15, truncated=0.15, error_in_200=0.1, html_error=0.1)

    async def attempt(
        sim: VoiceSimulator, session: aiohttp.ClientSession, name: str, page: int
    ) -> None:
        with contextlib.suppress(aiohttp.ClientPayloadError):
            await report(session, sim, name, page=page)

    async with serve(seed=seed, faults=mixed) as (sim, session):
        for _ in range(3):
            for page in (1, 2, 3, 4, 5):
                await attempt(sim, session, "calls", page)
        await asyncio.gather(*(attempt(sim, session, "recordings", p) for p in (1, 2, 3, 4)))
    log = [(r.path, r.params, r.status, r.fault) for r in sim.observed.requests]
    calls = [entry for entry in log if entry[0].endswith("calls")]
    # Concurrent requests may arrive in any order: their fates still follow the request.
    recordings = sorted(entry for entry in log if entry[0].endswith("recordings"))
    return calls + recordings


@pytest.mark.asyncio
async def test_faults_are_reproducible_from_the_seed() -> None:
    """The same seed serves the same fault sequence; another seed a different one."""
    first = await _fault_sequence(8)
    again = await _fault_sequence(8)
    other = await _fault_sequence(9)
    assert first == again
    assert first != other
    assert {entry[3] for entry in first} > {None}


# -- fault draws, without a server -----------------------------------------------------


def test_no_faults_means_a_clean_fate() -> None:
    """The default Faults never injects anything and adds no latency."""
    assert Faults().draw(1, "/api/v2/voice/calls?page=1", 1) == Fate(None, 0.0, 200)


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_a_certain_fault_is_always_drawn(kind: str) -> None:
    """A fault with probability 1.0 is every request's fate."""
    faults = Faults(**{kind: 1.0})
    fates = [faults.draw(7, f"/api/v2/voice/calls?page={n}", 1) for n in range(30)]
    assert {fate.fault for fate in fates} == {kind}


def test_server_errors_draw_500_502_and_503() -> None:
    """The status of a drawn server error is one of 500, 502 and 503, each seen."""
    faults = Faults(server_error=1.0)
    statuses = {faults.draw(7, f"r{n}", 1).status for n in range(60)}
    assert statuses == {500, 502, 503}


def test_draws_are_reproducible() -> None:
    """The same seed, request and attempt always give the same fate."""
    faults = Faults(latency_ms=20, server_error=0.3, reset=0.2, truncated=0.2)
    first = [faults.draw(5, f"r{n}", attempt) for n in range(40) for attempt in (1, 2)]
    again = [faults.draw(5, f"r{n}", attempt) for n in range(40) for attempt in (1, 2)]
    other_seed = [faults.draw(6, f"r{n}", attempt) for n in range(40) for attempt in (1, 2)]
    assert first == again
    assert first != other_seed


def test_a_retried_request_gets_a_fresh_draw() -> None:
    """Later attempts of one request draw again, so a retry can succeed."""
    faults = Faults(server_error=0.5)
    fates = [
        faults.draw(5, "/api/v2/voice/calls?page=1", attempt).fault for attempt in range(1, 40)
    ]
    assert None in fates
    assert "server_error" in fates


def test_fault_frequency_follows_its_probability() -> None:
    """Over many requests a fault shows up about as often as its probability says."""
    faults = Faults(truncated=0.25)
    hits = sum(faults.draw(2, f"r{n}", 1).fault == "truncated" for n in range(4000))
    assert 850 <= hits <= 1150


def test_latency_is_a_positive_spread_distribution() -> None:
    """latency_ms draws log-normal latencies around the median, not a constant."""
    faults = Faults(latency_ms=50)
    latencies = [faults.draw(3, f"r{n}", 1).latency for n in range(400)]
    assert all(latency > 0 for latency in latencies)
    assert len(set(latencies)) == len(latencies)
    assert statistics.median(latencies) == pytest.approx(0.050, rel=0.2)
    assert max(latencies) > 2 * min(latencies)


def test_zero_spread_latency_is_constant() -> None:
    """latency_spread=0 makes every latency exactly latency_ms."""
    faults = Faults(latency_ms=40, latency_spread=0)
    latencies = [faults.draw(3, f"r{n}", 1).latency for n in range(20)]
    assert latencies == pytest.approx([0.04] * 20)


def test_demo_faults_never_stall() -> None:
    """The demo preset has latency and a little of each fault, but no stalls."""
    demo = Faults.demo()
    assert demo.latency_ms > 0
    assert demo.stall == 0
    assert all(getattr(demo, kind) > 0 for kind in FAULT_KINDS if kind != "stall")


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        ({"server_error": 1.5}, "server_error"),
        ({"reset": -0.1}, "reset"),
        ({"stall": 2}, "stall"),
        ({"latency_ms": -1}, "latency_ms"),
        ({"stall_seconds": -5}, "stall_seconds"),
    ],
)
def test_bad_fault_settings_are_refused(settings: dict[str, float], name: str) -> None:
    """A probability outside 0..1 or a negative time raises ValueError naming the setting."""
    with pytest.raises(ValueError, match=name):
        Faults(**settings)
