"""Hostile servers: small aiohttp apps on a loopback port, each against a real client.

``hostile(handler)`` serves one handler for every path and yields a
:class:`HostileServer`: its ``base_url``, the ``requests`` it saw, and
``client(**settings)`` for a :class:`VoiceClient` pointed at it. ``fetch_day``
reads the one day the fixture page belongs to.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus
from zoneinfo import ZoneInfo

import orjson
import pytest
import stamina
from aiohttp import web
from yarl import URL

from tests.conftest import fixture_bytes, fixture_json, one_day
from voiceapi_async import (
    Call,
    OutOfWindowError,
    PagingError,
    RateLimitError,
    ResponseFormatError,
    RetryPolicy,
    TransportError,
    VoiceClient,
)
from voiceapi_async._sizing import MAX_PARTS
from voiceapi_async.backfill import Backfill, Manifest, plan
from voiceapi_async.export import get_format

TOKEN = "hostile-token-93c1e7"
FAST = RetryPolicy(attempts=4, wait_initial=0.0, wait_max=0.01, wait_jitter=0.0)
DAY = "2019-06-11"
PAGE = one_day("calls_shape_a.json")
"""A valid page of two calls on :data:`DAY`."""
MiB = 1024 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclasses.dataclass(frozen=True)
class SeenRequest:
    """One request as the hostile server received it."""

    method: str
    path_qs: str
    headers: dict[str, str]


@dataclasses.dataclass
class HostileServer:
    """A running hostile server: where it listens and what it saw."""

    base_url: str
    requests: list[SeenRequest]

    def client(self, **settings: Any) -> VoiceClient:
        """Return a client for this server: no rate limit, fast retries, then ``settings``."""
        options: dict[str, Any] = {
            "base_url": self.base_url,
            "token": TOKEN,
            "timezone": "UTC",
            "rate_limit": 0,
            "retry": FAST,
        }
        options.update(settings)
        return VoiceClient(**options)


@contextlib.asynccontextmanager
async def hostile(handler: Handler) -> AsyncIterator[HostileServer]:
    """Serve ``handler`` for every path on a free loopback port for the block."""
    seen: list[SeenRequest] = []

    async def observed(request: web.Request) -> web.StreamResponse:
        seen.append(SeenRequest(request.method, request.path_qs, dict(request.headers)))
        return await handler(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", observed)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield HostileServer(f"http://{host}:{port}/api/v2/", seen)
    finally:
        await runner.cleanup()


async def fetch_day(server: HostileServer, **settings: Any) -> tuple[list[Call], VoiceClient]:
    """Read :data:`DAY`'s calls from ``server``; return them and the (closed) client."""
    async with server.client(**settings) as voice:
        return await voice.calls(DAY, DAY).collect(), voice


def answer(body: bytes, **headers: str) -> Handler:
    """Return a handler that answers every request with ``body`` and ``headers``."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, headers={"Content-Type": "application/json", **headers})

    return handler


async def write_until_gone(response: web.StreamResponse, chunks: Iterator[bytes]) -> None:
    """Write ``chunks`` until they end or the client hangs up."""
    with contextlib.suppress(ConnectionError):
        for chunk in chunks:
            await response.write(chunk)


# --- size limit: max_response_bytes ---------------------------------------------------


@functools.cache
def bomb(encoding: str, inflated: int = 128 * MiB) -> bytes:
    """Return a body of zeros compressed as ``encoding``: ``inflated`` bytes once read."""
    wbits = {"gzip": 31, "deflate": 15}[encoding]
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    block = bytes(MiB)
    parts = [packer.compress(block) for _ in range(inflated // MiB)]
    parts.append(packer.flush())
    return b"".join(parts)


@pytest.mark.asyncio
@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_compression_bomb_stops_at_the_limit_with_memory_bounded(encoding: str) -> None:
    """A small compressed body inflating to 128 MiB fails past 1 MiB, once, in bounded memory."""
    body = bomb(encoding)
    assert len(body) < MiB // 4
    async with hostile(answer(body, **{"Content-Encoding": encoding})) as server:
        tracemalloc.start()
        try:
            with pytest.raises(ResponseFormatError) as caught:
                await fetch_day(server, max_response_bytes=MiB)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 8 * MiB, f"peak {peak / MiB:.1f} MiB while reading a bomb"
    assert "max_response_bytes (1048576 bytes;" in str(caught.value)
    assert server.base_url.removesuffix("api/v2/") in str(caught.value)
    assert not caught.value.retryable
    assert len(server.requests) == 1


@pytest.mark.asyncio
async def test_a_huge_announced_body_fails_before_it_is_read() -> None:
    """A plain body whose Content-Length passes the limit fails at once, with no retry."""
    async with hostile(answer(b" " * (4 * MiB))) as server:
        with pytest.raises(
            ResponseFormatError, match=r"announces 4194304 bytes \(Content-Length\)"
        ):
            await fetch_day(server, max_response_bytes=MiB)
    assert len(server.requests) == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [200, 503])
async def test_a_huge_chunked_body_fails_as_it_passes_the_limit(status: int) -> None:
    """A body without Content-Length fails past the limit, once, on an error status too."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=status, headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await write_until_gone(response, (bytes(64 * 1024) for _ in range(64)))
        return response

    async with hostile(handler) as server:
        with pytest.raises(ResponseFormatError, match=r"passed \d+ bytes") as caught:
            await fetch_day(server, max_response_bytes=MiB)
    assert "max_response_bytes (1048576 bytes;" in str(caught.value)
    assert len(server.requests) == 1


@pytest.mark.asyncio
async def test_a_body_streamed_slowly_fails_as_soon_as_it_passes_the_limit() -> None:
    """A never-ending trickle fails once past the limit, while the server still holds it open."""
    limit = 64 * 1024
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await write_until_gone(response, (b"x" * 1024 for _ in range(limit // 1024 + 1)))
        await release.wait()  # the body never ends on its own: waiting for it times out
        return response

    async with hostile(handler) as server:
        try:
            with pytest.raises(ResponseFormatError, match="max_response_bytes"):
                await fetch_day(server, max_response_bytes=limit, read_timeout=10.0)
        finally:
            release.set()
    assert len(server.requests) == 1


@pytest.mark.asyncio
async def test_a_lying_content_length_above_the_limit_fails_without_waiting_for_it() -> None:
    """A Content-Length past the limit on a body that never comes fails at once."""
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = 10**12
        await response.prepare(request)
        await write_until_gone(response, iter([b'{"status": "OK", "data": [']))
        await release.wait()
        return response

    async with hostile(handler) as server:
        try:
            with pytest.raises(ResponseFormatError, match="announces 1000000000000 bytes"):
                await fetch_day(server, max_response_bytes=MiB, read_timeout=10.0)
        finally:
            release.set()
    assert len(server.requests) == 1


@pytest.mark.asyncio
async def test_a_lying_content_length_below_the_body_is_a_transport_error() -> None:
    """A page followed by more than the limit past its Content-Length: a bounded protocol error."""
    release = asyncio.Event()
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"

    async def handler(request: web.Request) -> web.StreamResponse:
        transport = request.transport
        assert transport is not None
        transport.write(head % len(PAGE) + PAGE + b" " * (2 * MiB))  # in one write, raw
        await release.wait()
        return web.Response()

    async with hostile(handler) as server:
        try:
            with pytest.raises(TransportError, match="Bad status line"):
                await fetch_day(server, max_response_bytes=MiB)
        finally:
            release.set()
    assert len(server.requests) == FAST.attempts


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("br", PAGE),  # not asked for (no Brotli installed), or not Brotli if it is
        ("zstd", PAGE),
        ("gzip", b"\x1f\x8b\x08\x00" + bytes(range(256)) * 4),  # a gzip header, then junk
        ("deflate", b"x\x9c" + bytes(range(256)) * 4),
    ],
)
async def test_a_body_that_cannot_be_decompressed_fails_typed_without_retrying(
    encoding: str, body: bytes
) -> None:
    """Corrupt or unasked-for compression is the server's answer, not a hiccup: one request."""
    async with hostile(answer(body, **{"Content-Encoding": encoding})) as server:
        with pytest.raises(ResponseFormatError, match="cannot be decompressed") as caught:
            await fetch_day(server)
    assert len(server.requests) == 1
    assert not caught.value.retryable
    assert encoding in str(caught.value)
    assert TOKEN not in str(caught.value)
    assert caught.value.__cause__ is None


@pytest.mark.asyncio
@pytest.mark.parametrize("encoding", [None, "gzip"])
async def test_a_body_at_the_limit_is_read_and_one_byte_less_is_refused(
    encoding: str | None,
) -> None:
    """The limit counts decompressed bytes: a page of exactly the limit passes, one less fails."""
    if encoding is None:
        body, headers = PAGE, {}
    else:
        packer = zlib.compressobj(9, zlib.DEFLATED, 31)
        body = packer.compress(PAGE) + packer.flush()
        headers = {"Content-Encoding": encoding}
    async with hostile(answer(body, **headers)) as server:
        calls, voice = await fetch_day(server, max_response_bytes=len(PAGE))
        assert [call.id for call in calls] == [
            "3f1c2a10-9b7e-11e9-a2f3-6c2b59c79f5a",
            "4a7d9e22-9b7e-11e9-8c11-6c2b59c79f5a",
        ]
        assert voice.stats.bytes == len(PAGE)
        with pytest.raises(ResponseFormatError, match="max_response_bytes"):
            await fetch_day(server, max_response_bytes=len(PAGE) - 1)
    assert len(server.requests) == 2


# --- Retry-After ----------------------------------------------------------------------


@pytest.fixture
def scheduled_waits() -> Iterator[list[float]]:
    """Collect the wait stamina schedules before each retry (its instrumentation hook)."""
    waits: list[float] = []
    previous = stamina.instrumentation.get_on_retry_hooks()
    stamina.instrumentation.set_on_retry_hooks(
        [*previous, lambda details: waits.append(details.wait_for)]
    )
    yield waits
    stamina.instrumentation.set_on_retry_hooks(previous)


CAP = 0.05
"""The tests' ``max_retry_after``: short, so that the waits they check stay short."""


@pytest.mark.asyncio
async def test_a_value_the_skim_skips_and_json_refuses_fails_typed_at_the_consumer() -> None:
    """A charge of ``1e999`` passes the first read (ids only): taking the page names it.

    One request: a format error is the server's fault, not worth a retry.
    """
    page = orjson.loads(PAGE)
    body = orjson.dumps(page).replace(b'"charges":', b'"charges":1e999,"was":', 1)
    async with hostile(answer(body)) as server:
        with pytest.raises(ResponseFormatError, match="not JSON where it was skimmed"):
            await fetch_day(server)
    assert len(server.requests) == 1


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("retry_after", "wait"),
    [
        ("-5", CAP),  # unusable: the 1 s default, cut to the cap
        ("nan", CAP),
        ("inf", CAP),
        ("-inf", CAP),
        ("soon", CAP),
        ("9" * 400, CAP),  # too large for a float
        ("1e3", CAP),  # not digits
        (str(10**12), CAP),  # absurd: cut to the cap
        ("Fri, 31 Dec 9999 23:59:59 GMT", CAP),  # a date years ahead: cut to the cap
        ("0.02", 0.02),  # a usable ask under the cap is honoured as is
        ("0", 0.0),  # the server says "now"
    ],
)
async def test_each_retry_after_a_429_waits_what_the_rule_says(
    retry_after: str, wait: float, scheduled_waits: list[float]
) -> None:
    """Bad or absurd Retry-After values never mean no wait, nor a wait beyond the cap."""
    policy = RetryPolicy(attempts=3, wait_initial=0.0, wait_jitter=0.0, max_retry_after=CAP)

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(
            status=429,
            body=fixture_bytes("error_429.json"),
            headers={"Content-Type": "application/json", "Retry-After": retry_after},
        )

    async with hostile(handler) as server:
        with pytest.raises(RateLimitError):
            await fetch_day(server, retry=policy)
    assert len(server.requests) == policy.attempts
    assert scheduled_waits == pytest.approx([wait] * (policy.attempts - 1))


# --- paging: numbers that cannot be true, records outside their window ---------------

TZ = "Asia/Kolkata"
STRICT: dict[str, Any] = {"timezone": TZ, "retry": RetryPolicy(attempts=1)}
"""Client settings for the paging cases: the account's zone, no retries."""
ROW = fixture_json("calls_shape_b_page1.json")["data"]["data"][0]  # ends 2019-06-11 05:57:36
RECORDING = fixture_json("recordings_shape_c.json")["data"][0]  # created 2019-06-11 06:04:21


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


def page_asked(request: web.Request | SeenRequest) -> int:
    """Return the page number a request asked for."""
    query = request.query if isinstance(request, web.Request) else URL(request.path_qs).query
    return int(query.get("page", "1"))


@pytest.mark.asyncio
async def test_a_last_page_that_does_not_follow_from_total_fails_at_page_one() -> None:
    """3 records announced as a billion pages: PagingError after one request, not a split."""

    async def handler(request: web.Request) -> web.Response:
        page = page_asked(request)
        rows = [dict(ROW, id=f"call-{page}")] if page <= 3 else []
        return paginator(rows, page=page, per_page=1, total=3, last_page=10**9)

    async with hostile(handler) as served, served.client(**STRICT) as client:
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

    async with hostile(handler) as served, served.client(**STRICT) as client:
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

    async with hostile(handler) as served, served.client(**STRICT) as client:
        with pytest.raises(PagingError, match=r"page 1 came back when page 2 was asked for"):
            await client.calls("2019-06-11", "2019-06-11").collect()
    assert sorted(page_asked(request) for request in served.requests) == [1, 2]


@pytest.mark.asyncio
async def test_more_rows_than_per_page_or_rows_numbered_wrong_are_paging_errors() -> None:
    """Rows beyond per_page, or from/to that do not number them, cannot be true."""

    async def handler(request: web.Request) -> web.Response:
        rows = [dict(ROW, id=f"call-{n}") for n in range(3)]
        return paginator(rows, page=1, per_page=2, total=2, last_page=1)

    async with hostile(handler) as served, served.client(**STRICT) as client:
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

    async with hostile(handler) as served, served.client(**STRICT) as client:
        with pytest.raises(OutOfWindowError) as caught:
            await client.calls("2024-03-05", "2024-03-05").collect()
    error = caught.value
    assert (error.window, error.record_id) == ("calls/2024-03-05", ROW["id"])
    assert error.timestamp.startswith("2019-06-11 05:57:36")
    assert "did not apply the date filter" in str(error)
    assert len(served.requests) == 1


@pytest.mark.asyncio
async def test_a_record_outside_a_multi_day_request_is_an_out_of_window_error() -> None:
    """Three sparse days read in one request: a 2019 call lands on the first day, and fails."""

    async def handler(request: web.Request) -> web.Response:
        return unfiltered_calls(request)

    async with hostile(handler) as served, served.client(**STRICT) as client:
        with pytest.raises(OutOfWindowError) as caught:
            await client.calls("2024-03-05", "2024-03-07").collect()
    assert (caught.value.window, caught.value.record_id) == ("calls/2024-03-05", ROW["id"])
    assert len(served.requests) == 1
    assert "Mar 05, 2024 - Mar 07, 2024" in unquote_plus(served.requests[0].path_qs)


@pytest.mark.asyncio
async def test_a_record_one_second_past_the_window_is_caught_and_the_last_second_is_not() -> None:
    """Both ends are inclusive to the second: 23:59:59 belongs to the day, 00:00:00 does not."""
    ends = ["2019-06-11 00:00:00", "2019-06-11 23:59:59"]

    async def handler(request: web.Request) -> web.Response:
        rows = [dict(ROW, id=f"call-{n}", end_at=end) for n, end in enumerate(ends)]
        return paginator(rows, page=1, per_page=15, total=len(rows), last_page=1)

    async with hostile(handler) as served, served.client(**STRICT) as client:
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

    async with hostile(handler) as served, served.client(**STRICT) as client:
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
    async with hostile(handler) as served, served.client(**STRICT) as client:
        with Manifest(tmp_path / "_manifest.sqlite") as manifest:
            summary = await Backfill(client, manifest, get_format("jsonl"), tmp_path).run(windows)
            errors = {entry.key: entry.last_error or "" for entry in manifest.entries()}
    assert sorted(key for key, _ in summary.failed) == [w.key for w in windows]
    assert summary.written == 0
    assert all("did not apply the date filter" in error for error in errors.values())
    assert sorted(errors) == [w.key for w in windows]
    assert not list(tmp_path.glob("**/*.jsonl"))


# --- probes: liars whose numbers agree ---------------------------------------------------


def asked_span(request: web.Request) -> tuple[dt.datetime, dt.datetime]:
    """Return the wall-clock range a request's date filter asked for, both ends inclusive."""
    first, last = request.query["datetime[end_at]"].split(" - ")

    def read(text: str, *, end: bool) -> dt.datetime:
        with contextlib.suppress(ValueError):
            return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
        day = dt.datetime.strptime(text, "%b %d, %Y")
        return day.replace(hour=23, minute=59, second=59) if end else day

    return read(first, end=False), read(last, end=True)


@pytest.mark.asyncio
async def test_a_part_that_pages_into_another_parts_records_is_an_out_of_window_error() -> None:
    """Counts add up, but a later part's page 2 repeats part 1's calls: never a silent loss."""
    morning = [dict(ROW, id=f"a{n}", end_at="2019-06-11 03:00:00") for n in range(4)]
    evening = [dict(ROW, id=f"b{n}", end_at="2019-06-11 15:00:00") for n in range(4)]

    async def handler(request: web.Request) -> web.Response:
        first, last = asked_span(request)
        page = page_asked(request)
        held = [
            r for r in morning + evening if first <= dt.datetime.fromisoformat(r["end_at"]) <= last
        ]
        rows = held[(page - 1) * 2 : page * 2]
        if first.hour >= 12 and page == 2:
            rows = morning[:2]  # instead of b2, b3
        return paginator(
            rows, page=page, per_page=2, total=len(held), last_page=-(-len(held) // 2) or 1
        )

    async with hostile(handler) as served, served.client(**STRICT, split_pages=1) as client:
        with pytest.raises(OutOfWindowError, match=r"record 'a0' has end_at 2019-06-11 03:00:00"):
            await client.calls("2019-06-11", "2019-06-11").collect()


def repeating_liar(*, per_part: bool, cap: int) -> Handler:
    """A server claiming a billion calls a day, paged one a page, that holds 3 calls a range.

    Its numbers agree and its calls lie in the range asked for; only their ids repeat
    (per range when ``per_part``, else everywhere). After ``cap`` requests it answers
    empty pages, so that a client without a bound ends too.
    """
    answered = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal answered
        answered += 1
        first, last = asked_span(request)
        total = 10**9 * (int((last - first).total_seconds()) + 1) // 86400
        page = page_asked(request)
        tag = f"{first:%H%M%S}-" if per_part else ""
        row = dict(ROW, id=f"call-{tag}{page % 3}", end_at=f"{first:%Y-%m-%d %H:%M:%S}")
        rows = [row] if answered <= cap else []
        return paginator(rows, page=page, per_page=1, total=total, last_page=max(total, 1))

    return handler


@pytest.mark.asyncio
async def test_parts_whose_first_pages_share_records_fail_before_any_part_is_paged() -> None:
    """Counts that add up, but the same calls in every part: the sub-day filter is ignored."""
    async with (
        hostile(repeating_liar(per_part=False, cap=5000)) as served,
        served.client(**STRICT) as client,
    ):
        with pytest.raises(PagingError, match=r"the same records came back for different parts"):
            await client.calls("2019-06-11", "2019-06-11").collect()
    assert len(served.requests) == 1 + MAX_PARTS


@pytest.mark.asyncio
@pytest.mark.parametrize("split", [True, False])
async def test_pages_that_only_repeat_records_end_the_window_in_few_requests(split: bool) -> None:
    """Consistent numbers for a billion calls, but pages repeat 3 ids: a bounded PagingError."""
    start = dt.datetime(2019, 6, 11, 10, tzinfo=ZoneInfo(TZ))
    end = start + (dt.timedelta(days=1, seconds=-1) if split else dt.timedelta(seconds=30))
    async with (
        hostile(repeating_liar(per_part=True, cap=5000)) as served,
        served.client(**STRICT, max_in_flight=2) as client,
    ):
        with pytest.raises(PagingError, match=r"changed while it was read 3 times"):
            await client.calls(start, end).collect()
    assert len(served.requests) < 250


@pytest.mark.asyncio
@pytest.mark.parametrize("split", [True, False])
async def test_pages_short_of_per_page_before_the_last_end_the_window_in_few_requests(
    split: bool,
) -> None:
    """A billion calls announced, one new call a page of 100: a bounded PagingError."""
    answered = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal answered
        answered += 1
        first, last = asked_span(request)
        total = 10**9 * (int((last - first).total_seconds()) + 1) // 86400
        page = page_asked(request)
        row = dict(ROW, id=f"call-{first:%H%M%S}-{page}", end_at=f"{first:%Y-%m-%d %H:%M:%S}")
        rows = [row] if answered <= 5000 else []
        return paginator(rows, page=page, per_page=100, total=total, last_page=-(-total // 100))

    start = dt.datetime(2019, 6, 11, 10, tzinfo=ZoneInfo(TZ))
    end = start + (dt.timedelta(days=1, seconds=-1) if split else dt.timedelta(seconds=30))
    async with hostile(handler) as served, served.client(**STRICT, max_in_flight=2) as client:
        with pytest.raises(PagingError, match=r"changed while it was read 3 times"):
            await client.calls(start, end).collect()
    assert len(served.requests) < 250
