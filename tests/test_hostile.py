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
import functools
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import stamina
from aiohttp import web

from tests.conftest import fixture_bytes
from voiceapi_async import (
    Call,
    RateLimitError,
    ResponseFormatError,
    RetryPolicy,
    TransportError,
    VoiceClient,
)

TOKEN = "hostile-token-93c1e7"
FAST = RetryPolicy(attempts=4, wait_initial=0.0, wait_max=0.01, wait_jitter=0.0)
DAY = "2019-06-11"
PAGE = fixture_bytes("calls_shape_a.json")
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
