"""Quota efficiency: the page size learned from the server, spans sized to the data."""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from voiceapi_async import RetryPolicy, VoiceClient
from voiceapi_async.backfill import Backfill, Manifest, WindowState, plan
from voiceapi_async.client import page_budget
from voiceapi_async.export import get_format
from voiceapi_async.testing import VoiceSimulator, run_simulator

TZ = "Asia/Kolkata"
TOKEN = "quota-token-1"
FAST = RetryPolicy(attempts=3, wait_initial=0.0, wait_max=0.01, wait_jitter=0.0)
NOW = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)


def client_for(sim: VoiceSimulator, **settings: Any) -> VoiceClient:
    options: dict[str, Any] = {
        "base_url": sim.base_url,
        "token": TOKEN,
        "timezone": TZ,
        "rate_limit": 0,
        "retry": FAST,
    }
    options.update(settings)
    return VoiceClient(**options)


def asked(sim: VoiceSimulator) -> list[dict[str, str]]:
    """The query of every report request the simulator saw, in order."""
    return [dict(request.params) for request in sim.observed.report_requests()]


def fetched_twice(sim: VoiceSimulator) -> list[tuple[str, str, str]]:
    """Report pages asked for more than once: (date range, page, page size)."""
    seen = Counter(
        (
            query.get("datetime[end_at]", query.get("datetime[r.created_at]", "")),
            query["page"],
            query.get("per_page", ""),
        )
        for query in asked(sim)
    )
    return [key for key, count in seen.items() if count > 1]


@pytest.mark.asyncio
@pytest.mark.parametrize(("cap", "default"), [(50, 15), (15, 15)])
async def test_a_clamped_or_ignored_page_size_is_learned_in_one_request(
    cap: int, default: int
) -> None:
    """The first request asks for the ceiling; every later one for what the server applied."""
    async with (
        run_simulator(
            token=TOKEN, calls_per_day=200, per_page_max=cap, per_page_default=default
        ) as sim,
        client_for(sim) as client,
    ):
        calls = await client.calls("2024-03-01", "2024-03-03").collect()
        stats = client.stats
    queries = asked(sim)
    assert queries[0]["per_page"] == "1000"
    assert {query["per_page"] for query in queries[1:]} == {str(cap)}
    assert stats.per_page == cap
    assert len(calls) == len(
        sim.ids_between("calls", dt.datetime(2024, 3, 1), dt.datetime(2024, 3, 3, 23, 59, 59))
    )
    assert not fetched_twice(sim)


@pytest.mark.asyncio
async def test_a_pinned_page_size_is_always_asked_for() -> None:
    """per_page pins the size: no learning, every request asks for it."""
    async with (
        run_simulator(token=TOKEN, calls_per_day=50, per_page_max=100) as sim,
        client_for(sim, per_page=20) as client,
    ):
        await client.calls("2024-03-01", "2024-03-02").collect()
    assert {query["per_page"] for query in asked(sim)} == {"20"}
    assert client.stats.per_page == 20


@pytest.mark.asyncio
@pytest.mark.parametrize("cap", [15, 50, 1000])
async def test_a_sparse_month_costs_about_its_pages_but_is_handed_on_day_by_day(cap: int) -> None:
    """Sparse days go out in multi-day requests; the stream still yields day windows in order."""
    async with (
        run_simulator(token=TOKEN, calls_per_day=8, per_page_max=cap) as sim,
        client_for(sim) as client,
    ):
        stream = client.calls("2024-03-01", "2024-03-30")
        days: list[str] = []
        records = 0
        async with stream:
            async for page in stream.pages():
                if not days or days[-1] != page.window.key:
                    days.append(page.window.key)
                records += len(page.records)
                for call in page.records:
                    assert call.end_at is not None
                    assert page.window.start <= call.end_at <= page.window.end
        truth = sim.ids_between(
            "calls", dt.datetime(2024, 3, 1), dt.datetime(2024, 3, 30, 23, 59, 59)
        )
    assert records == len(truth)
    assert days == [f"calls/2024-03-{day:02d}" for day in range(1, 31)]
    minimum = math.ceil(records / cap)
    assert len(asked(sim)) <= 2 * minimum + 1
    assert len(asked(sim)) < 30  # fewer than a request a day
    assert not fetched_twice(sim)


@pytest.mark.asyncio
async def test_dense_days_are_split_before_their_first_page_and_no_page_is_fetched_twice() -> None:
    """Days of about 70 pages (over split_pages) are read in parts planned ahead."""
    async with (
        run_simulator(token=TOKEN, calls_per_day=1000, per_page_max=15) as sim,
        client_for(sim, split_pages=40) as client,
    ):
        calls = await client.calls("2024-03-01", "2024-03-04").collect()
    queries = asked(sim)
    day_firsts = [
        query
        for query in queries
        if query["page"] == "1"
        and query["datetime[end_at]"].count(":") == 0
        and query["datetime[end_at]"].split(" - ")[0] == query["datetime[end_at]"].split(" - ")[1]
    ]
    assert not day_firsts  # no whole day's page 1 was fetched only to be split
    assert not fetched_twice(sim)
    assert len(queries) <= 1.1 * math.ceil(len(calls) / 15) + 1


@pytest.mark.asyncio
async def test_a_backfill_writes_sparse_days_byte_identical_to_day_by_day_reads(
    tmp_path: Path,
) -> None:
    """A month in a few requests: one partition a day, each byte-identical to a lone day's read."""
    async with run_simulator(token=TOKEN, calls_per_day=8, per_page_max=100) as sim:
        windows = plan("calls", "2024-03-01", "2024-03-31", TZ, now=NOW)
        async with client_for(sim) as client:
            with Manifest(tmp_path / "a.sqlite") as manifest:
                alone = Backfill(client, manifest, get_format("csv"), tmp_path / "alone")
                for window in windows:
                    alone.manifest.register([window])
                    await alone.run_window(window)
        before = len(asked(sim))
        async with client_for(sim) as client:
            with Manifest(tmp_path / "b.sqlite") as manifest:
                together = Backfill(client, manifest, get_format("csv"), tmp_path / "together")
                summary = await together.run(windows)
    assert summary.ok
    assert summary.written == 31
    requests = len(asked(sim)) - before
    assert requests <= math.ceil(summary.records / 100) + 2
    assert summary.requests == requests
    assert summary.requests_per_1000_records is not None
    files = sorted(p.relative_to(tmp_path / "alone") for p in (tmp_path / "alone").rglob("*.csv"))
    assert len(files) == 31
    for relative in files:
        assert (tmp_path / "together" / relative).read_bytes() == (
            tmp_path / "alone" / relative
        ).read_bytes()


def test_larger_pages_get_fewer_budget_tokens() -> None:
    """The page budget stays near 6,400 records at 16 slots: 4 a slot at 100, 2 at 1,000."""
    assert page_budget(16, 15) == 64
    assert page_budget(16, 100) == 64
    assert page_budget(16, 200) == 32
    assert page_budget(16, 1000) == 32
    assert page_budget(1, 1000) == 2


@contextlib.asynccontextmanager
async def failing_on(sim: VoiceSimulator, bad: dt.date) -> AsyncIterator[str]:
    """Yield the API root of a proxy to ``sim`` that answers 500 for any range covering ``bad``."""
    async with aiohttp.ClientSession() as session:

        async def forward(request: web.Request) -> web.Response:
            first, _, last = request.query["datetime[end_at]"].partition(" - ")
            days = [dt.datetime.strptime(text[:12], "%b %d, %Y").date() for text in (first, last)]
            if days[0] <= bad <= days[1]:
                return web.json_response({"message": "Server Error"}, status=500)
            async with session.get(
                sim.base_url + request.match_info["tail"],
                params=request.query,
                headers={"Authorization": request.headers["Authorization"]},
            ) as upstream:
                return web.Response(
                    body=await upstream.read(),
                    status=upstream.status,
                    content_type="application/json",
                )

        proxy = web.Application()
        proxy.router.add_get("/api/v2/{tail:.*}", forward)
        runner = web.AppRunner(proxy)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        try:
            yield f"http://{host}:{port}/api/v2/"
        finally:
            await runner.cleanup()


@pytest.mark.asyncio
async def test_a_day_that_fails_inside_a_multi_day_request_fails_alone(tmp_path: Path) -> None:
    """The stretch's request fails; its days are read one by one and only the bad one fails."""
    async with (
        run_simulator(token=TOKEN, calls_per_day=8) as sim,
        failing_on(sim, dt.date(2024, 3, 4)) as upstream,
    ):
        windows = plan("calls", "2024-03-01", "2024-03-06", TZ, now=NOW)
        async with VoiceClient(
            base_url=upstream,
            token=TOKEN,
            timezone=TZ,
            rate_limit=0,
            retry=RetryPolicy(attempts=1),
        ) as client:
            with Manifest(tmp_path / "m.sqlite") as manifest:
                backfill = Backfill(client, manifest, get_format("csv"), tmp_path / "out")
                summary = await backfill.run(windows)
                states = {entry.key: entry.state for entry in manifest.entries()}
    assert summary.written == 5
    assert [key for key, _ in summary.failed] == ["calls/2024-03-04"]
    assert states.pop("calls/2024-03-04") is WindowState.FAILED
    assert set(states.values()) == {WindowState.DONE}
