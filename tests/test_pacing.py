"""Pacing by the server's rate-limit headers: the pure pacer, then clients on the simulator."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import re
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

from tests.conftest import EdgeResponse, one_day
from voiceapi_async import RetryPolicy, VoiceClient
from voiceapi_async._pacing import MAX_LIMIT, Pacer, parse_count, reserve_for
from voiceapi_async.backfill import Backfill, Manifest, plan
from voiceapi_async.export import get_format
from voiceapi_async.testing import run_simulator

TOKEN = "pacing-token-77f1"
ZONE = "Asia/Kolkata"
WINDOW = 60.0


class Clock:
    """Monotonic time a test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        """Return the time the test set."""
        return self.now


def pacer(clock: Clock, **settings: Any) -> Pacer:
    options: dict[str, Any] = {"window": WINDOW, "per_minute": 1000, "burst": 16}
    return Pacer(clock=clock, **{**options, **settings})


def answer(
    pace: Pacer, ticket: Any, limit: int | str | None, remaining: int | str | None, **more: Any
) -> None:
    pace.answered(
        ticket,
        status=more.pop("status", 200),
        limit=None if limit is None else str(limit),
        remaining=None if remaining is None else str(remaining),
        **more,
    )


# --- the pure pacer ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1000", 1000),
        (" 42 ", 42),
        ("0", 0),
        (None, None),
        ("", None),
        ("-1", None),
        ("+5", None),
        ("1.5", None),
        ("1e3", None),
        ("nan", None),
        ("0x10", None),
        ("٣", None),  # an Arabic-Indic digit: a digit to str.isdigit, not to HTTP
        ("100, 100", None),
        ("9" * 13, None),
    ],
)
def test_header_values_are_whole_ascii_numbers_or_nothing(
    text: str | None, value: int | None
) -> None:
    """Only plain ASCII digits count; anything else reads as absent."""
    assert parse_count(text) == value


def test_the_reserve_is_a_tenth_of_the_limit() -> None:
    """Bulk requests leave 10% of the limit, rounded down."""
    assert [reserve_for(n) for n in (1, 9, 10, 200, 1000, 1005)] == [0, 0, 1, 20, 100, 100]


def test_before_any_header_the_assumed_rate_paces() -> None:
    """Unknown limit: 1000 a minute assumed; interactive bursts, then even spacing."""
    clock = Clock()
    pace = pacer(clock)
    quota = pace.quota()
    assert (quota.limit, quota.available, quota.left, quota.announced) == (1000, 1000, 60, False)
    for _ in range(16):  # a burst of max(in flight) within the reserve
        assert pace.delay(bulk=False) == 0
        pace.issue(bulk=False)
    assert pace.delay(bulk=False) == pytest.approx(60 / (1000 - 16 + 1))
    bulk = pacer(Clock())
    bulk.issue(bulk=True)
    assert bulk.delay(bulk=True) == pytest.approx(60 / (899 + 1))  # bulk: no burst


def test_a_lower_announced_limit_is_followed() -> None:
    """The server's limit replaces the assumed one; the rest of the window is spread evenly."""
    clock = Clock()
    pace = pacer(clock)
    ticket = pace.issue(bulk=False)
    clock.now += 1
    answer(pace, ticket, 30, 29)
    quota = pace.quota()
    assert (quota.limit, quota.available, quota.left, quota.announced) == (30, 29, 60, True)
    for _ in range(3):  # the burst is bounded by the reserve: 3 of 30
        assert pace.delay(bulk=False) == 0
        pace.issue(bulk=False)
    assert pace.delay(bulk=False) == pytest.approx(60 / (26 + 1))
    assert pace.quota().available == 26


def test_bulk_waits_at_the_reserve_while_interactive_uses_it() -> None:
    """At the reserve, bulk requests wait for the next window; interactive ones go on."""
    clock = Clock()
    pace = pacer(clock)
    ticket = pace.issue(bulk=True)
    answer(pace, ticket, 100, 11)
    assert pace.delay(bulk=True) == pytest.approx(60 / 2)  # one left above the reserve
    clock.now += 30
    pace.issue(bulk=True)
    assert pace.quota().available == 10
    assert pace.delay(bulk=True) == pytest.approx(30)  # until the window ends
    assert pace.delay(bulk=False) < 3  # ten more for interactive requests, spread over 30 s
    clock.now += 30
    assert pace.delay(bulk=True) == 0  # a new window
    assert pace.quota().available == 100


def test_the_window_is_dated_from_its_first_answer_and_renewed_after_it() -> None:
    """The end is the first answer's time plus a window; the next request starts another."""
    clock = Clock()
    pace = pacer(clock)
    first = pace.issue(bulk=False)
    clock.now += 2
    answer(pace, first, 10, 9)
    clock.now += 5
    later = pace.issue(bulk=False)
    answer(pace, later, 10, 8)
    assert pace.quota().left == pytest.approx(WINDOW - 5)
    clock.now += WINDOW - 5
    assert pace.quota().available == 10  # the window ended: all of it again
    renewed = pace.issue(bulk=False)
    clock.now += 1
    answer(pace, renewed, 10, 9)
    assert pace.quota().left == pytest.approx(WINDOW)
    assert pace.quota().available == 9


def test_a_count_that_jumps_up_starts_a_new_window() -> None:
    """A window that reset before the estimate said is dated from the answer that shows it."""
    clock = Clock()
    pace = pacer(clock)
    answer(pace, pace.issue(bulk=False), 100, 99)
    clock.now += 10
    answer(pace, pace.issue(bulk=False), 100, 5)
    clock.now += 10
    answer(pace, pace.issue(bulk=False), 100, 97)
    assert pace.quota().available == 97
    assert pace.quota().left == pytest.approx(WINDOW)


def test_answers_to_requests_from_before_a_window_are_stale() -> None:
    """An old request's count does not overwrite a newer one's."""
    clock = Clock()
    pace = pacer(clock)
    old = pace.issue(bulk=False)
    newer = pace.issue(bulk=False)
    answer(pace, newer, 100, 50)
    answer(pace, old, 100, 51)  # counted earlier, answered later
    assert pace.quota().available == 50
    second, third = pace.issue(bulk=False), pace.issue(bulk=False)
    answer(pace, third, 100, 47)
    answer(pace, second, 100, 48)  # the same, inside a window
    assert pace.quota().available == 47
    clock.now += 30
    answer(pace, pace.issue(bulk=False), 100, 98)  # the window reset
    answer(pace, newer, 100, 3)  # a straggler from the old window
    assert pace.quota().available == 98


def test_a_429_waits_for_its_retry_after_at_most_a_window() -> None:
    """A 429 means none left until Retry-After; a longer ask is cut to the window."""
    clock = Clock()
    pace = pacer(clock)
    answer(pace, pace.issue(bulk=False), 100, 0, status=429, retry_after=7.0)
    assert pace.delay(bulk=False) == pytest.approx(7.0)
    clock.now += 7
    assert pace.delay(bulk=False) == 0
    answer(pace, pace.issue(bulk=False), 100, 0, status=429, retry_after=3600.0)
    assert pace.delay(bulk=False) == pytest.approx(WINDOW)
    clock.now += WINDOW
    answer(pace, pace.issue(bulk=False), None, None, status=429)
    assert pace.delay(bulk=False) == pytest.approx(1.0)  # no Retry-After: a second


@pytest.mark.parametrize(
    ("limit", "remaining"),
    [
        ("-5", "-1"),
        ("abc", "xyz"),
        ("0", "0"),
        (str(MAX_LIMIT + 1), "3"),
        ("100", "101"),  # more left than the limit
        ("100", "1e2"),
        (None, "0"),  # a count without any limit known
    ],
)
def test_absurd_headers_are_ignored(limit: str | None, remaining: str | None) -> None:
    """Garbage leaves the pacer as if the header were absent."""
    clock = Clock()
    pace = pacer(clock)
    ticket = pace.issue(bulk=False)
    before = pace.quota()
    pace.answered(ticket, status=200, limit=limit, remaining=remaining)
    after = pace.quota()
    if limit == "100":  # a sound limit is taken, without the count beside it
        assert (after.limit, after.available, after.announced) == (100, 99, True)
    else:
        assert after == before


def test_busy_interactive_clients_allow_for_others_within_the_reserve() -> None:
    """Within the reserve, what others used between answers is assumed to go on, for a while."""
    clock = Clock()
    pace = pacer(clock)
    answer(pace, pace.issue(bulk=False), 100, 20)  # the window ends at 1060
    clock.now += 1
    answer(pace, pace.issue(bulk=False), 100, 8)  # others used 11 in that second
    assert pace.delay(bulk=False) == 0
    clock.now += 1  # by now they have likely taken the 8 left
    stale_at = (1001 * 9 + 2 * 1060) / 11  # the answer is two spacings of 8 old
    assert pace.delay(bulk=False) == pytest.approx(stale_at - clock.now)
    clock.now = stale_at
    assert pace.delay(bulk=False) == 0  # back from a pause: the count last seen


def test_burst_credit_grows_only_while_nothing_is_in_flight() -> None:
    """An idle interactive client may burst (within the reserve); a busy one may not."""
    clock = Clock()
    pace = pacer(clock)
    answer(pace, pace.issue(bulk=False), 100, 99)

    def burst() -> list[Any]:
        tickets = []
        while pace.delay(bulk=False) == 0:
            tickets.append(pace.issue(bulk=False))
        return tickets

    first = burst()
    assert len(first) == 10  # the reserve of 100
    for ticket in first[1:]:
        answer(pace, ticket, 100, 80)
    clock.now += 10  # one still in flight: no credit past one
    busy = burst()
    assert len(busy) == 1
    for ticket in (first[0], *busy):
        pace.abandoned(ticket)
    clock.now += 10  # nothing in flight
    assert len(burst()) == 10


def test_a_window_waiting_for_its_first_answer_is_not_renewed() -> None:
    """With a request of an assumed window still out, its end is not trusted."""
    clock = Clock()
    pace = pacer(clock)
    ticket = pace.issue(bulk=True)
    clock.now += WINDOW + 1
    assert pace.quota().left == WINDOW  # held: still the same window
    assert pace.quota().available == 1000 - 1
    pace.abandoned(ticket)
    assert pace.quota().available == 1000  # no answer: a new window may start


def test_a_held_window_with_no_budget_looks_again_soon() -> None:
    """Held with nothing left, the pacer asks to be asked again after one spacing."""
    clock = Clock()
    pace = pacer(clock, per_minute=2)
    pace.issue(bulk=False)
    pace.issue(bulk=False)
    clock.now += WINDOW
    assert pace.delay(bulk=False) == pytest.approx(WINDOW / 2)


def test_an_explicit_cap_is_never_exceeded() -> None:
    """A cap of N a minute spaces requests 60 / (N - 1) s apart, whatever the server says."""
    clock = Clock()
    pace = pacer(clock, per_minute=61, cap=61)
    answer(pace, pace.issue(bulk=False), 100_000, 99_999)
    assert pace.delay(bulk=False) == pytest.approx(1.0)
    clock.now += 1
    assert pace.delay(bulk=False) == 0
    single = pacer(Clock(), per_minute=1, cap=1)
    single.issue(bulk=False)
    assert single.delay(bulk=False) == pytest.approx(60.0)


@pytest.mark.parametrize(
    "settings",
    [{"window": 0.0}, {"per_minute": 0}, {"burst": 0}, {"cap": 0}],
)
def test_settings_must_be_positive(settings: dict[str, Any]) -> None:
    """A window, rate, burst or cap of zero is refused."""
    with pytest.raises(ValueError, match="positive"):
        pacer(Clock(), **settings)


# --- clients on the simulator ---------------------------------------------------------


def remaining_log(into: list[int]) -> aiohttp.TraceConfig:
    """Return a trace config that appends each answer's X-RateLimit-Remaining."""

    async def on_end(
        session: aiohttp.ClientSession,
        context: types.SimpleNamespace,
        params: aiohttp.TraceRequestEndParams,
    ) -> None:
        into.append(int(params.response.headers["X-RateLimit-Remaining"]))

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_end)
    return trace


def statuses(sim: Any, keep: Callable[[Any], bool] = lambda request: True) -> list[int]:
    return [r.status for r in sim.observed.report_requests() if keep(r)]


@pytest.mark.asyncio
async def test_a_client_follows_a_lower_announced_limit() -> None:
    """A server allowing 10 each half second (not 1000 a minute): no 429, every record."""
    async with (
        run_simulator(token=TOKEN, calls_per_day=60, rate_limit=10, rate_window=0.5) as sim,
        VoiceClient(
            base_url=sim.base_url, token=TOKEN, timezone=ZONE, per_page=15, rate_window=0.5
        ) as client,
    ):
        calls = await client.calls("2024-03-01", "2024-03-07").collect()
    assert {call.id for call in calls} == sim.ids_between(
        "calls", *_days("2024-03-01", "2024-03-07")
    )
    assert len(statuses(sim)) > 2 * 10  # more than two windows' worth
    assert set(statuses(sim)) == {200}
    assert client.stats.paced_seconds > 0


@pytest.mark.asyncio
@pytest.mark.parametrize("work", ["a bulk client", "a backfill"])
async def test_bulk_work_stops_at_the_reserve_and_an_interactive_client_gets_through(
    work: str, tmp_path: Path
) -> None:
    """Bulk work leaves the last 10% of the window; an interactive query uses it at once.

    A ``Backfill`` is bulk work by default, even through a client that is not.
    """
    clock = Clock()
    async with (
        run_simulator(token=TOKEN, calls_per_day=60, rate_limit=20) as sim,
        aiohttp.ClientSession() as raw,
    ):
        sim._limiter.clock = clock  # the window stays open for the whole test
        for _ in range(17):  # others used 17 of 20: 3 left, the reserve is 2
            async with raw.get(
                sim.base_url + "voice/calls", params=_MAR5, headers=_auth()
            ) as reply:
                assert reply.status == 200
        worker_seen: list[int] = []
        worker = VoiceClient(
            base_url=sim.base_url,
            token=TOKEN,
            timezone=ZONE,
            bulk=work == "a bulk client",
            max_in_flight=4,
            per_page=7,
            trace_configs=[remaining_log(worker_seen)],
        )
        manifest = Manifest(tmp_path / "_manifest.sqlite")
        async with worker, asyncio.TaskGroup() as group:
            # One page first, so the worker knows the count: 2 left, the reserve.
            minutes = (
                dt.datetime(2024, 3, 5, 0, 0, tzinfo=_IST),
                dt.datetime(2024, 3, 5, 0, 5, tzinfo=_IST),
            )
            await worker.calls(*minutes).collect()
            running: asyncio.Task[Any]
            if work == "a bulk client":
                running = group.create_task(worker.calls("2024-03-01", "2024-03-31").collect())
            else:
                windows = plan("calls", "2024-03-01", "2024-03-31", ZONE)
                backfill = Backfill(worker, manifest, get_format("jsonl", timezone=ZONE), tmp_path)
                running = group.create_task(backfill.run(windows))
            day = ("2024-03-05", "2024-03-05")
            wanted = len(sim.ids_between("recordings", *_days(*day)))
            interactive_seen: list[int] = []
            async with VoiceClient(
                base_url=sim.base_url,
                token=TOKEN,
                timezone=ZONE,
                per_page=math.ceil(wanted / 2),
                retry=RetryPolicy(attempts=1),  # a 429 fails the test at once
                trace_configs=[remaining_log(interactive_seen)],
            ) as interactive:
                recordings = await interactive.recordings(*day).collect()
            running.cancel()
        manifest.close()
    assert worker_seen == [2]  # the first page only: then waiting for the next window
    assert interactive_seen == [1, 0]  # two pages, out of the reserve
    assert len(recordings) == wanted
    assert set(statuses(sim)) == {200}
    assert interactive.stats.paced_seconds == 0


@pytest.mark.asyncio
async def test_two_bulk_clients_on_one_token_meet_no_429_after_the_first_window() -> None:
    """Two clients share 40 requests a second through the headers alone."""
    async with run_simulator(token=TOKEN, calls_per_day=60, rate_limit=40, rate_window=1.0) as sim:
        settings: dict[str, Any] = {
            "base_url": sim.base_url,
            "token": TOKEN,
            "timezone": ZONE,
            "per_page": 10,
            "rate_window": 1.0,
            "bulk": True,
        }
        async with (
            VoiceClient(**settings) as one,
            VoiceClient(**settings) as other,
            asyncio.TaskGroup() as group,
        ):
            first = group.create_task(one.calls("2024-03-01", "2024-03-08").collect())
            second = group.create_task(other.recordings("2024-03-01", "2024-03-16").collect())
    calls = sim.ids_between("calls", *_days("2024-03-01", "2024-03-08"))
    assert {call.id for call in first.result()} == calls
    recordings = sim.ids_between("recordings", *_days("2024-03-01", "2024-03-16"))
    assert {recording.id for recording in second.result()} == recordings
    requests = sim.observed.report_requests()
    assert len(requests) > 2 * (40 - 4)  # more than two windows' worth of bulk work
    start = requests[0].time
    assert [r.status for r in requests if r.time >= start + 1.0 and r.status == 429] == []


@pytest.mark.asyncio
async def test_an_explicit_rate_limit_stays_a_hard_cap() -> None:
    """rate_limit caps the client even when the server announces far more."""
    async with (
        run_simulator(token=TOKEN, calls_per_day=100, rate_limit=100_000) as sim,
        VoiceClient(
            base_url=sim.base_url, token=TOKEN, timezone=ZONE, per_page=10, rate_limit=1200
        ) as client,
    ):
        await client.calls("2024-03-01", "2024-03-02").collect()
    assert client.stats.requests >= 20
    assert sim.observed.max_per_second <= 21


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "headers",
    [
        {"X-RateLimit-Limit": "-5", "X-RateLimit-Remaining": "-1"},
        {"X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": "-1"},
        {"X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": "nan"},
        {"X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": "5000"},
        {"X-RateLimit-Limit": "0", "X-RateLimit-Remaining": "0"},
        {"X-RateLimit-Limit": "lots", "X-RateLimit-Remaining": "0"},
        {"X-RateLimit-Limit": "99999999999999", "X-RateLimit-Remaining": "0"},
    ],
)
async def test_garbage_rate_limit_headers_are_ignored(headers: dict[str, str]) -> None:
    """Unusable headers never make the client wait (an exhausted quota would)."""
    body = one_day("calls_shape_a.json")
    with aioresponses() as mocked:
        mocked.get(
            re.compile(r"^https://portal\.example\.test/api/v2/voice/calls\?.*$"),
            response_class=EdgeResponse,
            status=200,
            body=body,
            headers={"Content-Type": "application/json", **headers},
            repeat=True,
        )
        async with VoiceClient(
            base_url="https://portal.example.test/api/v2/", token=TOKEN
        ) as client:
            for _ in range(3):
                assert len(await client.calls("2019-06-11", "2019-06-11").collect()) == 2
    assert client.stats.requests == 3
    assert client.stats.paced_seconds == 0


_MAR5 = {"datetime[end_at]": "Mar 05, 2024 - Mar 05, 2024"}
_IST = dt.timezone(dt.timedelta(hours=5, minutes=30))


def _days(first: str, last: str) -> tuple[dt.datetime, dt.datetime]:
    return (
        dt.datetime.fromisoformat(first),
        dt.datetime.combine(dt.date.fromisoformat(last), dt.time(23, 59, 59)),
    )


def _auth() -> dict[str, str]:
    return {"Accept": "application/json", "Authorization": f"Bearer {TOKEN}"}


@pytest.mark.asyncio
async def test_a_request_that_gets_no_answer_is_retried_under_pacing() -> None:
    """A dropped connection leaves the pacer consistent: the retry goes, the page arrives."""
    with aioresponses() as mocked:
        calls = re.compile(r"^https://portal\.example\.test/api/v2/voice/calls\?.*$")
        mocked.get(calls, response_class=EdgeResponse, exception=aiohttp.ServerDisconnectedError())
        mocked.get(
            calls,
            response_class=EdgeResponse,
            status=200,
            body=one_day("calls_shape_a.json"),
            headers={"Content-Type": "application/json"},
        )
        retry = RetryPolicy(attempts=2, wait_initial=0.0, wait_jitter=0.0)
        async with VoiceClient(
            base_url="https://portal.example.test/api/v2/", token=TOKEN, retry=retry
        ) as client:
            assert len(await client.calls("2019-06-11", "2019-06-11").collect()) == 2
    assert (client.stats.requests, client.stats.retries) == (2, 1)
