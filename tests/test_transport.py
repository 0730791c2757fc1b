import re
import time
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.http_exceptions import ContentEncodingError
from aioresponses import aioresponses

from tests.conftest import EdgeResponse, fixture_bytes, one_day
from voiceapi_async import (
    PermissionDeniedError,
    RateLimitError,
    RecordError,
    RetryPolicy,
    ServerError,
    TransportError,
    ValidationError,
    VoiceClient,
)
from voiceapi_async._transport import _undecodable

BASE = "https://portal.example.test/api/v2/"
CALLS = re.compile(r"^https://portal\.example\.test/api/v2/voice/calls\?.*$")
TOKEN = "edge-token-5521"
FAST = RetryPolicy(attempts=4, wait_initial=0.0, wait_max=0.01, wait_jitter=0.0)
JSON = {"Content-Type": "application/json"}


CALLS_A = one_day("calls_shape_a.json")


def answer(mocked: aioresponses, **response: Any) -> None:
    """Queue one answer to the next calls request (``repeat=True``: to every one)."""
    mocked.get(CALLS, response_class=EdgeResponse, **response)


def client(**settings: Any) -> VoiceClient:
    return VoiceClient(
        base_url=BASE, token=TOKEN, timezone="UTC", rate_limit=0, retry=FAST, **settings
    )


def error_body(code: int, message: str, **extra: Any) -> bytes:
    return orjson.dumps({"status": "ERROR", "code": code, "message": message, **extra})


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (403, error_body(403, "IP address not allowed for this token."), PermissionDeniedError),
        (200, fixture_bytes("error_in_200.json"), PermissionDeniedError),
        (422, fixture_bytes("error_422.json"), ValidationError),
    ],
)
async def test_client_errors_raise_at_once_without_retries(
    status: int, body: bytes, error: type[Exception]
) -> None:
    """403 and 422 (also inside HTTP 200) raise their typed error after one request."""
    with aioresponses() as mocked:
        answer(mocked, status=status, body=body, headers=JSON, repeat=True)
        async with client() as voice:
            with pytest.raises(error):
                await voice.calls("2024-03-05", "2024-03-05").collect()
        assert voice.stats.requests == 1
        assert voice.stats.retries == 0


@pytest.mark.asyncio
async def test_server_errors_and_connection_failures_are_retried() -> None:
    """A 503, then a dropped connection, then a good page: the page arrives."""
    with aioresponses() as mocked:
        answer(mocked, status=503, body=error_body(503, "busy"), headers=JSON)
        answer(mocked, exception=aiohttp.ServerDisconnectedError())
        answer(mocked, status=200, body=CALLS_A, headers=JSON)
        async with client() as voice:
            calls = await voice.calls("2019-06-11", "2019-06-11").collect()
    assert [c.id for c in calls] == [
        "3f1c2a10-9b7e-11e9-a2f3-6c2b59c79f5a",
        "4a7d9e22-9b7e-11e9-8c11-6c2b59c79f5a",
    ]
    assert voice.stats.retries == 2
    assert voice.stats.requests == 3


@pytest.mark.asyncio
async def test_retries_end_with_the_last_typed_error() -> None:
    """When every attempt fails the last error surfaces, typed, after `attempts` tries."""
    with aioresponses() as mocked:
        answer(
            mocked,
            exception=aiohttp.ClientConnectionError("reset by peer"),
            repeat=True,
        )
        async with client() as voice:
            with pytest.raises(TransportError, match="reset by peer"):
                await voice.calls("2019-06-11", "2019-06-11").collect()
    assert voice.stats.requests == FAST.attempts
    with aioresponses() as mocked:
        answer(mocked, status=500, body=b"oops", repeat=True)
        async with client() as voice:
            with pytest.raises(ServerError):
                await voice.calls("2019-06-11", "2019-06-11").collect()


@pytest.mark.asyncio
async def test_retry_after_is_honoured_up_to_the_cap() -> None:
    """A 429 asking for an hour is waited out only up to max_retry_after."""
    policy = RetryPolicy(attempts=3, wait_initial=0.0, wait_jitter=0.0, max_retry_after=0.05)
    with aioresponses() as mocked:
        answer(
            mocked,
            status=429,
            body=fixture_bytes("error_429.json"),
            headers={**JSON, "Retry-After": "3600"},
        )
        answer(mocked, status=200, body=CALLS_A, headers=JSON)
        async with VoiceClient(
            base_url=BASE, token=TOKEN, timezone="UTC", rate_limit=0, retry=policy
        ) as voice:
            calls = await voice.calls("2019-06-11", "2019-06-11").collect()
    assert len(calls) == 2
    assert voice.stats.rate_limited == 1


@pytest.mark.asyncio
async def test_requests_carry_accept_and_the_token_as_configured() -> None:
    """Bearer by default; access_token in the query when asked; Accept always JSON."""
    with aioresponses() as mocked:
        answer(mocked, status=200, body=CALLS_A, headers=JSON)
        answer(mocked, status=200, body=CALLS_A, headers=JSON)
        async with client() as voice:
            await voice.calls("2019-06-11", "2019-06-11").collect()
        async with client(auth="access_token") as voice:
            await voice.calls("2019-06-11", "2019-06-11").collect()
        (bearer_key, bearer), (query_key, query) = list(mocked.requests.items())
    assert bearer[0].kwargs["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert bearer[0].kwargs["headers"]["Accept"] == "application/json"
    assert "access_token" not in str(bearer_key[1])
    assert f"access_token={TOKEN}" in str(query_key[1])
    assert "Authorization" not in query[0].kwargs["headers"]
    assert bearer_key[1].query["datetime[end_at]"] == "Jun 11, 2019 - Jun 11, 2019"


@pytest.mark.asyncio
async def test_no_retry_starts_once_the_deadline_has_passed() -> None:
    """A retryable failure whose first attempt used up the whole deadline is raised at once."""
    policy = RetryPolicy(attempts=5, deadline=1e-9, wait_initial=0.0, wait_jitter=0.0)
    with aioresponses() as mocked:
        answer(mocked, status=503, body=error_body(503, "busy"), headers=JSON, repeat=True)
        async with VoiceClient(
            base_url=BASE, token=TOKEN, timezone="UTC", rate_limit=0, retry=policy
        ) as voice:
            with pytest.raises(ServerError):
                await voice.calls("2024-03-05", "2024-03-05").collect()
    assert (voice.stats.requests, voice.stats.retries) == (1, 0)


@pytest.mark.asyncio
async def test_a_retried_request_counts_each_attempt_once() -> None:
    """Two 503s then a page: three requests, two retries, and the page's records."""
    with aioresponses() as mocked:
        answer(mocked, status=503, body=error_body(503, "busy"), headers=JSON)
        answer(mocked, status=503, body=error_body(503, "busy"), headers=JSON)
        answer(mocked, status=200, body=CALLS_A, headers=JSON)
        async with client() as voice:
            calls = await voice.calls("2019-06-11", "2019-06-11").collect()
    assert len(calls) == 2
    assert (voice.stats.requests, voice.stats.retries, voice.stats.pages) == (3, 2, 1)


@pytest.mark.asyncio
async def test_a_429_past_the_deadline_still_pauses_the_client() -> None:
    """No retry is left for a late 429, but every other request still waits out its Retry-After."""
    policy = RetryPolicy(attempts=5, deadline=1e-9, wait_initial=0.0, wait_jitter=0.0)
    limited = orjson.dumps({"message": "Too Many Attempts."})
    with aioresponses() as mocked:
        answer(mocked, status=429, body=limited, headers={**JSON, "Retry-After": "30"})
        async with VoiceClient(
            base_url=BASE, token=TOKEN, timezone="UTC", rate_limit=0, retry=policy
        ) as voice:
            with pytest.raises(RateLimitError):
                await voice.calls("2024-03-05", "2024-03-05").collect()
            paused_for = voice._transport._paused_until - time.monotonic()
    assert 25 < paused_for <= 30
    assert (voice.stats.requests, voice.stats.rate_limited) == (1, 1)


@pytest.mark.asyncio
async def test_a_bad_record_is_raised_when_the_consumer_reaches_its_page() -> None:
    """The pages before a malformed record are handed on; then RecordError names the record."""
    second = orjson.loads(one_day("calls_shape_b_page2.json"))
    (row,) = second["data"]["data"]
    row["duration"] = "not a duration"
    with aioresponses() as mocked:
        answer(mocked, status=200, body=fixture_bytes("calls_shape_b_page1.json"), headers=JSON)
        answer(mocked, status=200, body=orjson.dumps(second), headers=JSON)
        async with client() as voice:
            seen: list[str] = []

            async def consume() -> None:
                async for call in voice.calls("2019-06-11", "2019-06-11"):
                    seen.append(call.id)

            with pytest.raises(RecordError, match=rf"record '{row['id']}' at \$\.data\.data\[0\]"):
                await consume()
    assert len(seen) == 1
    assert seen[0] != row["id"]


@pytest.mark.asyncio
async def test_a_record_without_an_id_is_a_record_error_not_a_paging_error() -> None:
    """An id-less row cannot be de-duplicated, but the caller still learns what is wrong."""
    page = orjson.loads(CALLS_A)
    del page["data"][1]["id"]
    with aioresponses() as mocked:
        answer(mocked, status=200, body=orjson.dumps(page), headers=JSON, repeat=True)
        async with client() as voice:
            with pytest.raises(RecordError, match=r"\$\.data\[1\]\.id"):
                await voice.calls("2019-06-11", "2019-06-11").collect()


@pytest.mark.asyncio
async def test_a_transport_error_carries_no_aiohttp_exception_along() -> None:
    """The aiohttp error (with the request's headers) is neither cause nor context."""
    with aioresponses() as mocked:
        mocked.get(CALLS, exception=aiohttp.ClientConnectionError("reset"), repeat=True)
        one_try = RetryPolicy(attempts=1)
        async with VoiceClient(
            base_url=BASE, token=TOKEN, timezone="UTC", rate_limit=0, retry=one_try
        ) as voice:
            with pytest.raises(TransportError) as caught:
                await voice.calls("2024-03-05", "2024-03-05").collect()
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None


def test_an_undecodable_body_is_found_however_aiohttp_wraps_it() -> None:
    """Aiohttp's decoding failure is found down the chain; a cycle of other errors ends."""
    inner = ContentEncodingError("Can not decode content-encoding: gzip")
    wrapper = aiohttp.ClientPayloadError("Response payload is not completed")
    wrapper.__cause__ = inner
    outer = aiohttp.ClientResponseError(None, (), message="wrapped")  # type: ignore[arg-type]
    outer.__cause__ = wrapper
    assert _undecodable(outer) == "Can not decode content-encoding: gzip"
    first, second = aiohttp.ClientError("a"), aiohttp.ClientError("b")
    first.__context__, second.__context__ = second, first
    assert _undecodable(first) is None
    assert _undecodable(aiohttp.ClientConnectionError("reset")) is None
