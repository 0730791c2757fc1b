import asyncio
import copy
import datetime as dt
import gc
import logging
import pickle
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import attrs
import pendulum
import pytest
import pytest_asyncio

from tests.conftest import settled, until
from voiceapi_async import (
    AuthenticationError,
    Call,
    ClientConfig,
    ConfigError,
    NotFoundError,
    PagingError,
    Recording,
    RetryPolicy,
    VoiceClient,
    Window,
    plan_windows,
)
from voiceapi_async._fanout import PAGES_PER_WINDOW_BUFFER, run_windows
from voiceapi_async._gate import Admission
from voiceapi_async._stream import PAGE_QUEUE_SIZE
from voiceapi_async.client import PAGE_BUDGET_PER_SLOT, page_budget
from voiceapi_async.testing import Faults, VoiceSimulator, run_simulator

TOKEN = "tok-7f3a9c2e5b1d"
FAST_RETRIES = RetryPolicy(attempts=12, wait_initial=0.0, wait_max=0.02, wait_jitter=0.01)
DAY = (dt.datetime(2024, 3, 5), dt.datetime(2024, 3, 5, 23, 59, 59))
WEEK = (dt.datetime(2024, 3, 1), dt.datetime(2024, 3, 7, 23, 59, 59))
FAULTY = Faults(
    latency_ms=2,
    server_error=0.08,
    reset=0.04,
    truncated=0.04,
    error_in_200=0.03,
    html_error=0.03,
)
# A bare list answers a whole span in one request: a few requests must meet faults too.
FAULTIER = Faults(
    latency_ms=2, server_error=0.3, reset=0.15, truncated=0.15, error_in_200=0.1, html_error=0.1
)


def client_for(sim: VoiceSimulator, **settings: Any) -> VoiceClient:
    options: dict[str, Any] = {
        "base_url": sim.base_url,
        "token": TOKEN,
        "timezone": "Asia/Kolkata",
        "rate_limit": 0,
        "retry": FAST_RETRIES,
    }
    options.update(settings)
    return VoiceClient(**options)


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[VoiceSimulator]:
    async with run_simulator(token=TOKEN, calls_per_day=120, rate_limit=0) as simulator:
        yield simulator


@pytest.mark.asyncio
@pytest.mark.parametrize("shape", ["a", "b", "c"])
@pytest.mark.parametrize("per_page", [7, 40, 100])
async def test_records_equal_ground_truth_under_faults(shape: str, per_page: int) -> None:
    """Any shape and page size, with 5xx, resets, truncation, 429s and latency: exact truth."""
    async with (
        run_simulator(
            token=TOKEN,
            shape=shape,
            calls_per_day=90,
            faults=FAULTIER if shape == "a" else FAULTY,
            seed=per_page,
            rate_limit=40,
            rate_window=1.0,
        ) as sim,
        client_for(sim, per_page=per_page) as client,
    ):
        calls = await client.calls("2024-03-01", "2024-03-07").collect()
        recordings = await client.recordings("2024-03-01", "2024-03-07").collect()
    call_ids = [call.id for call in calls]
    recording_ids = [recording.id for recording in recordings]
    assert len(call_ids) == len(set(call_ids))
    assert set(call_ids) == sim.ids_between("calls", *WEEK)
    assert len(recording_ids) == len(set(recording_ids))
    assert set(recording_ids) == sim.ids_between("recordings", *WEEK)
    assert sum(sim.observed.faults.values()) > 0
    assert client.stats.retries > 0
    if per_page == 7 and shape != "a":
        assert client.stats.rate_limited > 0
    assert client.stats.records == len(calls) + len(recordings)


@pytest.mark.asyncio
async def test_rate_limited_server_is_waited_out() -> None:
    """429s with Retry-After pause the client, which then finishes with every record."""
    async with (
        run_simulator(token=TOKEN, calls_per_day=60, rate_limit=6, rate_window=1.0) as sim,
        client_for(sim, per_page=10) as client,
    ):
        calls = await client.calls("2024-03-04", "2024-03-06").collect()
    assert {call.id for call in calls} == sim.ids_between(
        "calls", dt.datetime(2024, 3, 4), dt.datetime(2024, 3, 6, 23, 59, 59)
    )
    assert client.stats.rate_limited > 0
    limited = [r for r in sim.observed.requests if r.status == 429]
    assert limited
    first = limited[0]
    # The whole client paused: apart from requests already in flight when the first
    # 429 came, nothing reached the server during the second it asked to wait.
    pause = (first.time + 0.1, first.time + 0.9)
    during_pause = [r for r in sim.observed.requests if pause[0] < r.time < pause[1]]
    assert during_pause == []


@pytest.mark.asyncio
async def test_in_flight_limit_holds(sim: VoiceSimulator) -> None:
    """The simulator never sees more requests at once than max_in_flight."""
    slow_server = run_simulator(token=TOKEN, calls_per_day=200, faults=Faults(latency_ms=20))
    async with slow_server as slow, client_for(slow, per_page=5, max_in_flight=3) as client:
        await client.calls("2024-03-01", "2024-03-04").collect()
    assert slow.observed.max_in_flight == 3


@pytest.mark.asyncio
async def test_rate_limit_holds(sim: VoiceSimulator) -> None:
    """The rate_limit cap keeps the request rate under the configured one."""
    async with client_for(sim, per_page=10, rate_limit=600) as client:
        await client.calls("2024-03-01", "2024-03-02").collect()
    assert client.stats.requests >= 20
    assert sim.observed.max_per_second <= 11
    assert sim.observed.max_per_minute <= 600


@pytest.mark.asyncio
async def test_wrong_token_fails_at_once_without_retries(sim: VoiceSimulator) -> None:
    """A bad token raises AuthenticationError on the first answer, never retried."""
    async with client_for(sim, token="wrong-token") as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.calls("2024-03-01", "2024-03-10").collect()
    assert client.stats.retries == 0
    assert len(sim.observed.report_requests()) <= 8
    assert "wrong-token" not in str(caught.value)


@pytest.mark.asyncio
async def test_wrong_path_is_not_found_without_retries(sim: VoiceSimulator) -> None:
    """A base URL with the wrong version raises NotFoundError at once."""
    base = sim.base_url.replace("/v2/", "/v3/")
    async with client_for(sim, base_url=base) as client:
        with pytest.raises(NotFoundError):
            await client.calls("2024-03-01", "2024-03-01").collect()
    assert client.stats.retries == 0


@pytest.mark.asyncio
async def test_streams_batches_pages_and_limits(sim: VoiceSimulator) -> None:
    """Async for, batches(n), pages(), max_items and await all read the same data."""
    async with client_for(sim, per_page=15) as client:
        records = [call async for call in client.calls(*DAY_DATES)]
        batches = [batch async for batch in client.calls(*DAY_DATES).batches(16)]
        pages = [page async for page in client.calls(*DAY_DATES).pages()]
        first_ten = await client.calls(*DAY_DATES, max_items=10).collect()
        awaited = await client.calls(*DAY_DATES)
    truth = sim.ids_between("calls", *DAY)
    assert {c.id for c in records} == truth
    assert all(len(batch) == 16 for batch in batches[:-1])
    assert 1 <= len(batches[-1]) <= 16
    assert [c.id for batch in batches for c in batch] == [c.id for c in records]
    assert [page.numbers.current_page for page in pages] == list(
        range(1, pages[0].numbers.last_page + 1)
    )
    assert all(page.window.key == "calls/2024-03-05" for page in pages)
    assert sum(len(page.records) for page in pages) == pages[0].numbers.total == len(truth)
    assert [c.id for c in first_ten] == [c.id for c in records[:10]]
    assert [c.id for c in awaited] == [c.id for c in records]
    assert all(isinstance(call, Call) for call in awaited)


DAY_DATES = ("2024-03-05", "2024-03-05")


@pytest.mark.asyncio
async def test_ordered_streams_are_chronological_by_window(sim: VoiceSimulator) -> None:
    """ordered=True yields window by window; ordered=False yields the same set."""
    async with client_for(sim, per_page=10, max_windows=4) as client:
        ordered = [page async for page in client.calls("2024-03-01", "2024-03-06").pages()]
        loose = await client.calls("2024-03-01", "2024-03-06", ordered=False).collect()
    starts = [page.window.start for page in ordered]
    assert starts == sorted(starts)
    assert {c.id for page in ordered for c in page.records} == {c.id for c in loose}


@pytest.mark.asyncio
async def test_a_stream_is_consumed_once(sim: VoiceSimulator) -> None:
    """Iterating a finished stream again is a clear RuntimeError."""
    async with client_for(sim) as client:
        stream = client.calls(*DAY_DATES)
        await stream.collect()
        with pytest.raises(RuntimeError, match="already consumed"):
            await stream.collect()


def other_tasks() -> set[asyncio.Task[Any]]:
    """Tasks besides this one, leaving out the in-process simulator's connection handlers."""
    return {
        task
        for task in asyncio.all_tasks()
        if task is not asyncio.current_task()
        and not getattr(task.get_coro(), "__qualname__", "").startswith("RequestHandler.")
    }


async def settle(baseline: set[asyncio.Task[Any]]) -> set[asyncio.Task[Any]]:
    """Let cancelled work unwind (a few loop turns), then return tasks left over."""
    for _ in range(50):
        leftover = other_tasks() - baseline
        if not leftover:
            return leftover
        await asyncio.sleep(0.01)
    return other_tasks() - baseline


@pytest.mark.asyncio
async def test_early_break_stops_all_work(sim: VoiceSimulator) -> None:
    """Breaking out of the loop cancels every in-flight request: no task is left."""
    async with client_for(sim, per_page=5) as client:
        baseline = other_tasks()
        async for _call in client.calls("2024-03-01", "2024-03-20"):
            break
        assert await settle(baseline) == set()
        # Requests arrived so far: answered, or in flight (logged when answered).
        arrived = len(sim.observed.report_requests()) + sim.observed.in_flight
        assert await settled(sim.observed) <= arrived


@pytest.mark.asyncio
async def test_aclose_and_async_with_stop_at_once(sim: VoiceSimulator) -> None:
    """stream.aclose() and leaving `async with stream` end all work before returning."""
    async with client_for(sim, per_page=5) as client:
        baseline = other_tasks()
        stream = client.calls("2024-03-01", "2024-03-20")
        iterator = stream.batches(3)
        await anext(iterator)
        await stream.aclose()
        assert other_tasks() - baseline == set()
        async with client.recordings("2024-03-01", "2024-03-20") as records:
            async for _recording in records:
                break
        assert other_tasks() - baseline == set()


@pytest.mark.asyncio
async def test_cancelling_the_consumer_stops_all_work(sim: VoiceSimulator) -> None:
    """Cancelling the task that iterates cancels the fetch and leaves no task behind."""
    async with client_for(sim, per_page=5) as client:
        baseline = other_tasks()
        started = asyncio.Event()

        async def consume() -> None:
            async for _call in client.calls("2024-03-01", "2024-03-20"):
                started.set()
                await asyncio.sleep(10)

        task = asyncio.create_task(consume())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await settle(baseline) == set()


@pytest.mark.asyncio
async def test_slow_consumer_holds_producers_back(sim: VoiceSimulator) -> None:
    """Back-pressure: with a stalled consumer only the documented bound of pages is fetched."""
    budget = page_budget(4, 2)
    assert budget == PAGE_BUDGET_PER_SLOT * 4
    async with client_for(sim, per_page=2, max_windows=2, max_in_flight=4) as client:
        stream = client.calls("2024-03-01", "2024-03-30")
        async with stream:
            iterator = stream.pages()
            await anext(iterator)
            # The producers run ahead until the bound stops them: at least the page
            # budget is asked for, then the requests stop.
            await until(lambda: len(sim.observed.report_requests()) >= budget)
            fetched = await settled(sim.observed)
    # 30 days of ~60 pages each exist. The bound (README, "Limits, retries and memory"):
    # the page budget, the head day's look-ahead (as large), the ready pages per open
    # day, the consumer's queue; then the pages in hand (the merger's and the one the
    # consumer took), the probe's page 1 (the whole range, declined) and a spare, and
    # each open day's parts' page 1s, fetched ahead to check that they hold apart.
    held = budget + budget + 2 * PAGES_PER_WINDOW_BUFFER + PAGE_QUEUE_SIZE
    bound = held + 2 + 2 + 2
    assert fetched <= bound


@pytest.mark.asyncio
async def test_changing_window_raises_paging_error_after_rereads() -> None:
    """When every request adds a record to the range, rereads give up with PagingError."""
    async with (
        run_simulator(token=TOKEN, calls_per_day=40, rate_limit=0, live_every=1) as sim,
        client_for(sim, per_page=5, rereads=1) as client,
    ):
        with pytest.raises(PagingError, match="changed while it was read 2 times"):
            await client.calls("2024-03-05", "2024-03-05").collect()


@pytest.mark.asyncio
async def test_large_days_are_split_into_sub_day_windows() -> None:
    """A day announcing more than split_pages pages is read as smaller windows."""
    async with (
        run_simulator(token=TOKEN, calls_per_day=300, rate_limit=0) as sim,
        client_for(sim, per_page=10, split_pages=4) as client,
    ):
        calls = await client.calls("2024-03-05", "2024-03-05").collect()
    assert {c.id for c in calls} == sim.ids_between("calls", *DAY)
    assert len(calls) == len({c.id for c in calls})
    ranges = {dict(r.params)["datetime[end_at]"] for r in sim.observed.report_requests()}
    assert any(":" in value for value in ranges)


@pytest.mark.asyncio
async def test_closed_client_refuses_work(sim: VoiceSimulator) -> None:
    """Aclose is idempotent and a closed client raises a clear RuntimeError."""
    client = client_for(sim)
    await client.aclose()
    await client.aclose()
    assert client.closed
    with pytest.raises(RuntimeError, match="closed"):
        client.calls(*DAY_DATES)
    with pytest.raises(RuntimeError, match="closed"):
        async with client:
            pass


@pytest.mark.asyncio
async def test_a_callers_session_is_used_and_never_closed(sim: VoiceSimulator) -> None:
    """A session passed in carries the requests and stays open after the client closes."""
    seen: list[str] = []

    async def on_start(_s: Any, _c: Any, params: aiohttp.TraceRequestStartParams) -> None:
        seen.append(params.url.path)

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        async with client_for(sim, session=session) as client:
            await client.calls(*DAY_DATES).collect()
        assert not session.closed
    assert seen
    assert all(path.endswith("voice/calls") for path in seen)


@pytest.mark.asyncio
async def test_trace_configs_are_passed_to_the_clients_session(sim: VoiceSimulator) -> None:
    """Aiohttp trace configs reach the session the client creates."""
    seen: list[int] = []

    async def on_end(_s: Any, _c: Any, params: aiohttp.TraceRequestEndParams) -> None:
        seen.append(params.response.status)

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_end)
    async with client_for(sim, trace_configs=[trace]) as client:
        await client.calls(*DAY_DATES).collect()
    assert seen
    assert set(seen) == {200}


@pytest.mark.asyncio
async def test_an_unclosed_client_warns(sim: VoiceSimulator) -> None:
    """A client dropped with its session open emits a ResourceWarning."""
    client = client_for(sim)
    await client.calls(*DAY_DATES, max_items=1).collect()
    session = client._transport._session
    del client
    with pytest.warns(ResourceWarning, match="never closed"):
        gc.collect()
    assert session is not None
    await session.close()


@pytest.mark.asyncio
async def test_secrets_never_reach_logs_errors_or_reprs(caplog: pytest.LogCaptureFixture) -> None:
    """A fault-heavy run with the token in the query leaks neither token nor signatures."""
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    async with run_simulator(token=TOKEN, calls_per_day=60, rate_limit=0, faults=FAULTY) as sim:
        async with client_for(sim, auth="access_token", per_page=9) as client:
            recordings = await client.recordings("2024-03-01", "2024-03-03").collect()
            texts += [repr(client), repr(client.config), repr(client.calls(*DAY_DATES))]
            texts += [repr(r) for r in recordings] + [str(r) for r in recordings]
        async with client_for(sim, token="t0k-wrong-secret", auth="access_token") as bad:
            with pytest.raises(AuthenticationError) as caught:
                await bad.calls(*DAY_DATES).collect()
            texts += [str(caught.value), repr(caught.value), caught.value.url, caught.value.body]
    texts += [record.getMessage() for record in caplog.records]
    signatures = [
        r.audio.split("X-Amz-Signature=")[1] for r in recordings if r.audio and "X-Amz" in r.audio
    ]
    assert signatures
    assert any("[REDACTED]" in text for text in texts)
    blob = "\n".join(texts)
    assert TOKEN not in blob
    assert "t0k-wrong-secret" not in blob
    for signature in signatures:
        assert signature not in blob
    assert "X-Amz-Credential=AKIA" not in blob


@pytest.mark.asyncio
async def test_logging_is_silent_by_default_and_redacted_when_on(
    sim: VoiceSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Debug logging under `voiceapi_async` names requests with redacted URLs."""
    caplog.set_level(logging.DEBUG, logger="voiceapi_async")
    async with client_for(sim, auth="access_token") as client:
        await client.calls(*DAY_DATES).collect()
    lines = [r.getMessage() for r in caplog.records if r.name == "voiceapi_async"]
    assert any("voice/calls" in line and "-> 200" in line for line in lines)
    assert all(TOKEN not in line for line in lines)
    assert logging.getLogger("voiceapi_async").handlers


@pytest.mark.asyncio
async def test_stream_deadline(sim: VoiceSimulator) -> None:
    """A stream that outlives its deadline raises RequestTimeoutError."""
    from voiceapi_async import RequestTimeoutError

    async with (
        run_simulator(
            token=TOKEN, rate_limit=0, faults=Faults(latency_ms=200, latency_spread=0.01)
        ) as slow,
        client_for(slow, deadline=0.3) as client,
    ):
        with pytest.raises(RequestTimeoutError, match="deadline"):
            await client.calls("2024-03-01", "2024-03-10").collect()


@pytest.mark.asyncio
async def test_stalled_bodies_time_out_and_are_retried() -> None:
    """A stalled body hits the per-attempt timeout and is retried until it answers."""
    async with (
        run_simulator(
            token=TOKEN,
            calls_per_day=30,
            rate_limit=0,
            seed=3,
            faults=Faults(stall=0.3, stall_seconds=5),
        ) as sim,
        client_for(sim, per_page=5, read_timeout=0.2, attempt_timeout=0.5) as client,
    ):
        calls = await client.calls("2024-03-01", "2024-03-03").collect()
    assert sim.observed.faults["stall"] > 0
    assert client.stats.retries >= sim.observed.faults["stall"]
    assert {c.id for c in calls} == sim.ids_between(
        "calls", dt.datetime(2024, 3, 1), dt.datetime(2024, 3, 3, 23, 59, 59)
    )


def test_max_response_bytes_setting() -> None:
    """max_response_bytes defaults to 64 MiB, is read from the environment and must be >= 1."""
    env = {
        "VOICEAPI_BASE_URL": "https://portal.example.test/api/v2/",
        "VOICEAPI_TOKEN": "abc",
        "VOICEAPI_TIMEZONE": "UTC",
    }
    assert ClientConfig.from_env(env).max_response_bytes == 64 * 1024 * 1024
    config = ClientConfig.from_env({**env, "VOICEAPI_MAX_RESPONSE_BYTES": "1024"})
    assert config.max_response_bytes == 1024
    with pytest.raises(ValueError, match="VOICEAPI_MAX_RESPONSE_BYTES='lots'"):
        ClientConfig.from_env({**env, "VOICEAPI_MAX_RESPONSE_BYTES": "lots"})
    with pytest.raises(ValueError, match="max_response_bytes"):
        ClientConfig(
            base_url="https://x/api/v2/", token="abc", timezone="UTC", max_response_bytes=0
        )


def test_pacing_settings_and_their_environment() -> None:
    """By default the server's headers pace an interactive client; bulk and the window are set."""
    env = {
        "VOICEAPI_BASE_URL": "https://portal.example.test/api/v2/",
        "VOICEAPI_TOKEN": "abc",
        "VOICEAPI_TIMEZONE": "UTC",
    }
    default = ClientConfig.from_env(env)
    assert (default.rate_limit, default.bulk, default.rate_window) == (None, False, 60.0)
    for text, value in (("1", True), ("Yes", True), ("on", True), ("0", False), ("off", False)):
        assert ClientConfig.from_env({**env, "VOICEAPI_BULK": text}).bulk is value
    config = ClientConfig.from_env(
        {**env, "VOICEAPI_RATE_WINDOW": "10", "VOICEAPI_RATE_LIMIT": "0"}
    )
    assert (config.rate_window, config.rate_limit) == (10.0, 0)
    with pytest.raises(ValueError, match="VOICEAPI_BULK='maybe'"):
        ClientConfig.from_env({**env, "VOICEAPI_BULK": "maybe"})
    with pytest.raises(ValueError, match="rate_window"):
        ClientConfig(base_url="https://x/api/v2/", token="abc", timezone="UTC", rate_window=0.0)
    with pytest.raises(TypeError, match="bulk"):
        ClientConfig(base_url="https://x/api/v2/", token="abc", timezone="UTC", bulk="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="rate_limit"):
        ClientConfig(base_url="https://x/api/v2/", token="abc", timezone="UTC", rate_limit=9.5)  # type: ignore[arg-type]


def test_config_from_env_and_validation() -> None:
    """from_env reads VOICEAPI_* variables; bad settings are named in the error."""
    env = {
        "VOICEAPI_BASE_URL": "https://portal.example.test/api/v2",
        "VOICEAPI_TOKEN": "abc",
        "VOICEAPI_TIMEZONE": "Asia/Kolkata",
        "VOICEAPI_MAX_IN_FLIGHT": "4",
    }
    config = ClientConfig.from_env(env)
    assert config.base_url == "https://portal.example.test/api/v2/"
    assert config.max_in_flight == 4
    assert "abc" not in repr(config)
    with pytest.raises(ValueError, match="VOICEAPI_TOKEN is not set"):
        ClientConfig.from_env({"VOICEAPI_BASE_URL": "https://x/api/v2/"})
    with pytest.raises(ValueError, match="VOICEAPI_MAX_IN_FLIGHT='many'"):
        ClientConfig.from_env({**env, "VOICEAPI_MAX_IN_FLIGHT": "many"})
    cases: list[tuple[dict[str, Any], str]] = [
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"rate_limit": -1}, "rate_limit"),
        ({"per_page": 0}, "per_page"),
        ({"timezone": "Nowhere/City"}, "unknown time zone"),
        ({"base_url": "portal.example.test"}, "base_url"),
        ({"token": " "}, "token is empty"),
        ({"auth": "cookie"}, "cookie"),
    ]
    for bad, needle in cases:
        settings: dict[str, Any] = {
            "base_url": "https://x/api/v2/",
            "token": "t",
            "timezone": "UTC",
            **bad,
        }
        with pytest.raises(ValueError, match=needle):
            ClientConfig(**settings)


@pytest.mark.parametrize(
    ("base_url", "needle"),
    [
        ("https://portal.example.test/api/v2/?access_token=s3cr3t-q", "has a query string"),
        ("https://portal.example.test/api/v2?", "has a query string"),
        ("https://portal.example.test/api/v2/#s3cr3t-f", "or a fragment"),
        ("ftp://portal.example.test/api/v2/", "must start with http:// or https://"),
        ("file:///etc/passwd", "must start with http:// or https://"),
        ("portal.example.test/api/v2/", "must start with http:// or https://"),
        ("https:///api/v2/", "has no host"),
        ("https://user:s3cr3t-p@portal.example.test/api/v2/", "carries user info"),
        ("https://portal.example.test/api/v2/\r\nX-Evil: 1", "whitespace or a control"),
        ("https://portal.example.test/api/v2/\ufeff", "whitespace or a control"),
        ("https://portal.example.test\u200b/api/v2/", "whitespace or a control"),
        ("https://portal.example.test:http/api/v2/", "not a valid URL"),
    ],
)
def test_a_base_url_that_would_misroute_requests_is_refused_at_config_time(
    base_url: str, needle: str
) -> None:
    """Query, fragment, other schemes, no host, user info: a ValueError that hides secrets."""
    with pytest.raises(ValueError, match=needle) as caught:
        ClientConfig(base_url=base_url, token="t", timezone="UTC")
    assert "s3cr3t" not in str(caught.value)
    assert "portal.example.com/api/v2/" in str(caught.value)  # the example of a good one
    with pytest.raises(ValueError, match=needle):
        ClientConfig.from_env(
            {"VOICEAPI_BASE_URL": base_url, "VOICEAPI_TOKEN": "t", "VOICEAPI_TIMEZONE": "UTC"}
        )


def test_good_base_urls_keep_their_path_and_gain_a_slash() -> None:
    """HTTP and HTTPS roots, any case, ports and IPv6 hosts are accepted."""
    for url, expected in [
        ("HTTPS://Portal.Example.test/api/v2", "HTTPS://Portal.Example.test/api/v2/"),
        (" http://127.0.0.1:8080/api/v2/ ", "http://127.0.0.1:8080/api/v2/"),
        ("http://[::1]:9/api/v2/", "http://[::1]:9/api/v2/"),
    ]:
        assert ClientConfig(base_url=url, token="t", timezone="UTC").base_url == expected


@pytest.mark.parametrize(
    ("token", "needle"),
    [
        ("tok-1234567890\r\n", r"whitespace \(U\+000D\) inside it"),
        ("tok-1234567890\n", r"whitespace \(U\+000A\) at its end"),
        (" tok-1234567890", r"whitespace \(U\+0020\) at its start"),
        ("tok-12345 67890", r"whitespace \(U\+0020\) inside it"),
        ("tok-12345\x0067890", r"a control character \(U\+0000\)"),
        ("tok-12345\u200b67890", r"a control character \(U\+200B\)"),
        ("tok-12345\u00a067890", r"whitespace \(U\+00A0\)"),
        ("tok-12345\u00e967890", r"outside printable ASCII \(U\+00E9\)"),
    ],
)
def test_a_token_that_cannot_be_sent_is_refused_without_showing_it(token: str, needle: str) -> None:
    """Whitespace, control or non-ASCII characters: a ValueError naming the character only."""
    with pytest.raises(ValueError, match=needle) as caught:
        ClientConfig(base_url="https://x/api/v2/", token=token, timezone="UTC")
    message = str(caught.value)
    assert "tok-" not in message
    assert "12345" not in message
    assert "67890" not in message
    with pytest.raises(ValueError, match=needle):
        ClientConfig.from_env(
            {
                "VOICEAPI_BASE_URL": "https://x/api/v2/",
                "VOICEAPI_TOKEN": token,
                "VOICEAPI_TIMEZONE": "UTC",
            }
        )


def test_max_days_has_a_default_an_env_variable_and_a_lower_bound() -> None:
    """max_days defaults to 3660, reads VOICEAPI_MAX_DAYS and refuses 0 or words."""
    env = {
        "VOICEAPI_BASE_URL": "https://x/api/v2/",
        "VOICEAPI_TOKEN": "t",
        "VOICEAPI_TIMEZONE": "UTC",
    }
    assert ClientConfig.from_env(env).max_days == 3660
    assert ClientConfig.from_env({**env, "VOICEAPI_MAX_DAYS": "31"}).max_days == 31
    with pytest.raises(ValueError, match="VOICEAPI_MAX_DAYS='month'"):
        ClientConfig.from_env({**env, "VOICEAPI_MAX_DAYS": "month"})
    with pytest.raises(ValueError, match="max_days"):
        ClientConfig(base_url="https://x/api/v2/", token="t", timezone="UTC", max_days=0)


def test_a_client_refuses_bad_ranges_before_any_request() -> None:
    """Year 9999 and a range over max_days are ValueErrors saying what to change."""
    client = VoiceClient(base_url="https://x/api/v2/", token="t", timezone="UTC", max_days=31)
    with pytest.raises(ValueError, match=r"end='9999-12-31'.*0001-01-02 to 9999-12-30"):
        client.calls("2024-01-01", "9999-12-31")
    with pytest.raises(ValueError, match="covers 91 days") as caught:
        client.recordings("2024-01-01", "2024-03-31")
    assert "covers 91 days, more than the limit of 31 days" in str(caught.value)
    assert "ClientConfig.max_days, VOICEAPI_MAX_DAYS" in str(caught.value)
    assert client.stats.requests == 0


@pytest.mark.asyncio
async def test_a_range_of_millennia_starts_streaming_at_once(sim: VoiceSimulator) -> None:
    """2024..9999 with no practical limit: the first records come after a few requests."""
    async with client_for(sim, max_days=10**7, max_windows=2, per_page=100) as client:
        stream = client.calls("2024-03-01", "9999-12-30", max_items=300)
        assert repr(stream) == "<RecordStream calls 2024-03-01..9999-12-30>"
        calls = await stream.collect()
    assert len(calls) == 300
    assert {call.id for call in calls} <= sim.ids_between("calls", *WEEK)
    assert len(sim.observed.report_requests()) <= 40


class _EnoughError(Exception):
    """Raised by a test consumer that has seen enough pages."""


@pytest.mark.asyncio
@pytest.mark.parametrize("ordered", [True, False])
async def test_fan_out_pulls_windows_from_an_iterator_only_as_slots_free_up(
    ordered: bool,
) -> None:
    """run_windows takes an endless iterator and pulls a window only when a slot is free."""
    (day,) = plan_windows("calls", "2024-03-01", "2024-03-01", "UTC")
    pulled = 0

    def endless() -> Iterator[Window]:
        nonlocal pulled
        while True:
            pulled += 1
            yield day

    emitted = 0

    async def read(window: Window, emit: Any, admission: Admission) -> None:
        await emit(window)

    async def emit(_page: Any) -> None:
        nonlocal emitted
        emitted += 1
        if emitted >= 5:
            raise _EnoughError

    with pytest.raises(ExceptionGroup) as caught:
        await run_windows(endless(), read, emit, max_windows=2, ordered=ordered, page_budget=1)
    assert caught.group_contains(_EnoughError)
    assert 5 <= pulled < 5 + 3 * 2  # the failing window, and a few per slot


def test_client_accepts_a_config_with_overrides() -> None:
    """VoiceClient(config=..., **overrides) applies the overrides on top."""
    config = ClientConfig(base_url="https://x/api/v2/", token="t", timezone="UTC", max_in_flight=4)
    client = VoiceClient(config, max_in_flight=8)
    assert client.config.max_in_flight == 8
    assert client.config.base_url == "https://x/api/v2/"
    with pytest.raises(TypeError, match="naive datetime"):
        client.calls(dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2))
    with pytest.raises(ValueError, match="before start"):
        client.recordings("2024-01-02", "2024-01-01")
    assert isinstance(Recording, type)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("zone", "day"), [("America/New_York", "2024-11-03"), ("Europe/London", "2024-10-27")]
)
async def test_the_repeated_hour_of_a_fall_back_day_is_no_out_of_window_error(
    zone: str, day: str
) -> None:
    """Records in a fall-back day's repeated hour belong to a window or part ending at 01:59:59."""
    async with (
        run_simulator(token=TOKEN, calls_per_day=2400, rate_limit=0, timezone=zone) as sim,
        client_for(sim, timezone=zone, per_page=100) as client,
        client_for(sim, timezone=zone, per_page=100, split_pages=2) as splitting,
    ):
        midnight = dt.datetime.fromisoformat(day)
        start = pendulum.datetime(midnight.year, midnight.month, midnight.day, 1, tz=zone)
        end = start.add(minutes=59, seconds=59)  # 01:59:59 in the first (summer) fold
        calls = await client.calls(start, end).collect()
        whole = await splitting.calls(day, day).collect()  # in parts of 2 hours
        hour = midnight + dt.timedelta(hours=1)
        truth = sim.ids_between("calls", hour, hour + dt.timedelta(seconds=3599))
        all_day = sim.ids_between("calls", midnight, midnight + dt.timedelta(seconds=86399))
    assert truth
    assert {c.id for c in calls} == truth
    assert {c.id for c in whole} == all_day


@pytest.mark.asyncio
@pytest.mark.parametrize("day", ["0001-01-02", "9999-12-30"])
async def test_the_first_and_last_supported_days_are_read_from_an_honest_server(day: str) -> None:
    """Year 1 and year 9999 stream like any day: four-digit years on the wire both ways."""
    async with (
        run_simulator(token=TOKEN, calls_per_day=20, rate_limit=0) as sim,
        client_for(sim) as client,
    ):
        calls = await client.calls(day, day).collect()
        midnight = dt.datetime.fromisoformat(day)
        truth = sim.ids_between("calls", midnight, midnight.replace(hour=23, minute=59, second=59))
    assert truth
    assert {c.id for c in calls} == truth


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("max_days", "31"),
        ("max_days", 1.5),
        ("max_days", True),
        ("max_response_bytes", "1000"),
        ("max_response_bytes", float("inf")),
        ("per_page", "100"),
        ("split_pages", float("inf")),
        ("rereads", 2.0),
    ],
)
def test_counts_given_as_text_floats_or_bools_are_type_errors_naming_the_setting(
    setting: str, value: object
) -> None:
    """max_days='31' (text from an environment) says to convert it, not a bare comparison error."""
    settings: dict[str, Any] = {
        "base_url": "https://x/api/v2/",
        "token": "t",
        "timezone": "UTC",
        setting: value,
    }
    with pytest.raises(TypeError, match=rf"'{setting}' must be a whole number \(int\)"):
        ClientConfig(**settings)


def test_the_time_zone_is_required_and_the_error_says_where_to_find_it() -> None:
    """No default zone: ClientConfig, VoiceClient and from_env refuse its absence alike."""
    attempts: list[Callable[[], object]] = [
        lambda: ClientConfig(base_url="https://x/api/v2/", token="t"),  # type: ignore[call-arg]
        lambda: ClientConfig(base_url="https://x/api/v2/", token="t", timezone=""),
        lambda: ClientConfig(base_url="https://x/api/v2/", token="t", timezone=None),  # type: ignore[arg-type]
        lambda: VoiceClient(base_url="https://x/api/v2/", token="t"),
        lambda: ClientConfig.from_env({"VOICEAPI_BASE_URL": "https://x/", "VOICEAPI_TOKEN": "t"}),
        lambda: ClientConfig.from_env(
            {"VOICEAPI_BASE_URL": "https://x/", "VOICEAPI_TOKEN": "t", "VOICEAPI_TIMEZONE": ""}
        ),
    ]
    for attempt in attempts:
        with pytest.raises(ConfigError) as caught:
            attempt()
        message = str(caught.value)
        assert "time zone is required, with no default" in message
        assert "the account's settings in the provider's dashboard" in message
        assert "timezone=" in message
        assert "VOICEAPI_TIMEZONE" in message
        assert isinstance(caught.value, ValueError)
    assert (
        ClientConfig.from_env(
            {"VOICEAPI_BASE_URL": "https://x/", "VOICEAPI_TOKEN": "t"}, timezone="UTC"
        ).timezone
        == "UTC"
    )
    with pytest.raises(ConfigError, match="VOICEAPI_BASE_URL is not set"):
        ClientConfig.from_env({})


def test_a_config_copies_and_pickles_with_its_time_zone() -> None:
    """The check of a missing zone lets copy, deepcopy, pickle and evolve through."""
    config = ClientConfig(base_url="https://x/api/v2/", token="t", timezone="Asia/Kolkata")
    assert copy.copy(config) == config
    assert copy.deepcopy(config) == config
    assert pickle.loads(pickle.dumps(config)) == config
    assert attrs.evolve(config, max_days=7).timezone == "Asia/Kolkata"
