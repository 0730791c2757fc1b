"""Hostile servers against paging: impossible numbers and records outside their window."""

import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import fixture_json
from voiceapi_async import OutOfWindowError, PagingError, RetryPolicy, VoiceClient
from voiceapi_async._paging import MAX_PARTS
from voiceapi_async.backfill import Backfill, Manifest, plan
from voiceapi_async.export import get_format

TZ = "Asia/Kolkata"
TOKEN = "hostile-token-77"
ROW = fixture_json("calls_shape_b_page1.json")["data"]["data"][0]  # ends 2019-06-11 05:57:36
RECORDING = fixture_json("recordings_shape_c.json")["data"][0]  # created 2019-06-11 06:04:21
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Served:
    """A loopback server and the requests it saw."""

    def __init__(self) -> None:
        self.requests: list[web.Request] = []
        self.base_url = ""

    def client(self, **settings: Any) -> VoiceClient:
        """Return a client of this server that does not retry."""
        options: dict[str, Any] = {"token": TOKEN, "timezone": TZ, "rate_limit": 0}
        options["retry"] = RetryPolicy(attempts=1)
        return VoiceClient(base_url=self.base_url, **(options | settings))


@contextlib.asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[Served]:
    """Serve ``handler`` for every path on a free loopback port."""
    served = Served()

    async def record(request: web.Request) -> web.StreamResponse:
        served.requests.append(request)
        return await handler(request)

    app = web.Application()
    app.router.add_get("/{tail:.*}", record)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    served.base_url = str(server.make_url("/api/v2/"))
    try:
        yield served
    finally:
        await server.close()


def paginator(
    rows: list[dict[str, Any]], *, page: int, per_page: int, total: int, last_page: int
) -> web.Response:
    """Answer in shape B with the numbers given, whatever they are."""
    first = (page - 1) * per_page + 1
    data = {
        "current_page": page,
        "data": rows,
        "from": first if rows else None,
        "to": first + len(rows) - 1 if rows else None,
        "last_page": last_page,
        "next_page_url": "https://example.test/voice/calls?page=2" if page < last_page else None,
        "per_page": per_page,
        "total": total,
    }
    return web.Response(
        body=orjson.dumps({"status": "OK", "data": data}), content_type="application/json"
    )


def page_asked(request: web.Request) -> int:
    return int(request.query.get("page", "1"))


@pytest.mark.asyncio
async def test_a_last_page_that_does_not_follow_from_total_fails_at_page_one() -> None:
    """3 records announced as a billion pages: PagingError after one request, not a split."""

    async def handler(request: web.Request) -> web.Response:
        page = page_asked(request)
        rows = [dict(ROW, id=f"call-{page}")] if page <= 3 else []
        return paginator(rows, page=page, per_page=1, total=3, last_page=10**9)

    async with serve(handler) as served, served.client() as client:
        with pytest.raises(PagingError, match=r"last_page 1000000000 does not follow from total 3"):
            await client.calls("2019-06-11", "2019-06-11").collect()
    assert len(served.requests) == 1


@pytest.mark.asyncio
async def test_parts_that_claim_the_whole_count_fail_before_any_part_is_paged() -> None:
    """A server that ignores the range claims a billion records for every part of the day."""

    async def handler(request: web.Request) -> web.Response:
        page = page_asked(request)
        rows = [dict(ROW, id=f"call-{page}")]
        return paginator(rows, page=page, per_page=1, total=10**9, last_page=10**9)

    async with serve(handler) as served, served.client() as client:
        with pytest.raises(PagingError, match=r"holds 1000000000 records, but its 16 parts claim"):
            await client.calls("2019-06-11", "2019-06-11").collect()
    assert len(served.requests) == 1 + MAX_PARTS  # the day's page 1, then each part's page 1
    assert all(page_asked(request) == 1 for request in served.requests)


@pytest.mark.asyncio
async def test_a_server_that_ignores_the_page_number_fails_at_page_two() -> None:
    """Page 1 again when page 2 was asked for: PagingError, not a silent loss of page 2."""

    async def handler(request: web.Request) -> web.Response:
        rows = [dict(ROW, id="call-a"), dict(ROW, id="call-b")]
        return paginator(rows, page=1, per_page=2, total=4, last_page=2)

    async with serve(handler) as served, served.client() as client:
        with pytest.raises(PagingError, match=r"page 1 came back when page 2 was asked for"):
            await client.calls("2019-06-11", "2019-06-11").collect()
    assert sorted(page_asked(request) for request in served.requests) == [1, 2]


@pytest.mark.asyncio
async def test_more_rows_than_per_page_or_rows_numbered_wrong_are_paging_errors() -> None:
    """Rows beyond per_page, or from/to that do not number them, cannot be true."""

    async def handler(request: web.Request) -> web.Response:
        rows = [dict(ROW, id=f"call-{n}") for n in range(3)]
        return paginator(rows, page=1, per_page=2, total=2, last_page=1)

    async with serve(handler) as served, served.client() as client:
        with pytest.raises(PagingError, match=r"3 rows on a page of 2"):
            await client.calls("2019-06-11", "2019-06-11").collect()
    assert len(served.requests) == 1


def unfiltered_calls(request: web.Request) -> web.Response:
    """What a server that did not apply the date filter answers: the same call, any range."""
    return paginator([ROW], page=page_asked(request), per_page=15, total=1, last_page=1)


@pytest.mark.asyncio
async def test_a_record_outside_its_window_is_an_out_of_window_error() -> None:
    """A call dated 2019 in the window of 2024-03-05: the error names both and the cause."""

    async def handler(request: web.Request) -> web.Response:
        return unfiltered_calls(request)

    async with serve(handler) as served, served.client() as client:
        with pytest.raises(OutOfWindowError) as caught:
            await client.calls("2024-03-05", "2024-03-05").collect()
    error = caught.value
    assert (error.window, error.record_id) == ("calls/2024-03-05", ROW["id"])
    assert error.timestamp.startswith("2019-06-11 05:57:36")
    assert "did not apply the date filter" in str(error)
    assert len(served.requests) == 1


@pytest.mark.asyncio
async def test_a_record_one_second_past_the_window_is_caught_and_the_last_second_is_not() -> None:
    """Both ends are inclusive to the second: 23:59:59 belongs to the day, 00:00:00 does not."""
    ends = ["2019-06-11 00:00:00", "2019-06-11 23:59:59"]

    async def handler(request: web.Request) -> web.Response:
        rows = [dict(ROW, id=f"call-{n}", end_at=end) for n, end in enumerate(ends)]
        return paginator(rows, page=1, per_page=15, total=len(rows), last_page=1)

    async with serve(handler) as served, served.client() as client:
        calls = await client.calls("2019-06-11", "2019-06-11").collect()
        assert [call.id for call in calls] == ["call-0", "call-1"]
        ends.append("2019-06-12 00:00:00")
        with pytest.raises(OutOfWindowError, match=r"call-2' has end_at 2019-06-12 00:00:00"):
            await client.calls("2019-06-11", "2019-06-11").collect()


@pytest.mark.asyncio
async def test_recordings_are_judged_by_their_created_at() -> None:
    """The recordings report filters on created_at: a recording from 2019 fails in 2024."""

    async def handler(request: web.Request) -> web.Response:
        meta = {"current_page": 1, "from": 1, "last_page": 1, "per_page": 15, "to": 1, "total": 1}
        body = {"status": "OK", "code": 200, "data": [RECORDING], "meta": meta}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async with serve(handler) as served, served.client() as client:
        assert len(await client.recordings("2019-06-11", "2019-06-11").collect()) == 1
        with pytest.raises(OutOfWindowError, match=r"created_at 2019-06-11 06:04:21"):
            await client.recordings("2024-03-05", "2024-03-05").collect()


@pytest.mark.asyncio
async def test_a_backfill_window_with_records_outside_it_fails_and_writes_nothing(
    tmp_path: Path,
) -> None:
    """Every day's window fails with the out-of-window message; no partition is written."""

    async def handler(request: web.Request) -> web.Response:
        return unfiltered_calls(request)

    now = dt.datetime(2024, 3, 10, tzinfo=dt.UTC)
    windows = plan("calls", "2024-03-01", "2024-03-03", TZ, now=now)
    async with serve(handler) as served, served.client() as client:
        with Manifest(tmp_path / "_manifest.sqlite") as manifest:
            summary = await Backfill(client, manifest, get_format("jsonl"), tmp_path).run(windows)
            errors = {entry.key: entry.last_error or "" for entry in manifest.entries()}
    assert sorted(key for key, _ in summary.failed) == [w.key for w in windows]
    assert summary.written == 0
    assert all("did not apply the date filter" in error for error in errors.values())
    assert sorted(errors) == [w.key for w in windows]
    assert not list(tmp_path.glob("**/*.jsonl"))
