"""Recording audio: presigned URLs in the reports, the storage that checks them, the bytes."""

from __future__ import annotations

import asyncio
import datetime as dt
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest

from tests.simulator.conftest import (
    FIXED_NOW,
    TOKEN,
    FakeClock,
    fetch,
    fixed_clock,
    origin_of,
    report,
    serve,
)
from voiceapi_async.testing import Faults, SimulatorConfig, VoiceSimulator
from voiceapi_async.testing._storage import AudioContent, AudioStorage, audio_bytes, s3_error

AMZ_PARAMS = {
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-Signature",
}


async def _signed_audio(
    session: aiohttp.ClientSession, sim: VoiceSimulator, *, headers: dict[str, str] | None = None
) -> list[str]:
    reply = await report(session, sim, "recordings", per_page=100, headers=headers)
    origin = origin_of(sim) if headers is None or "Host" not in headers else ""
    return [
        row["audio"]
        for row in reply.page().rows
        if row["audio"] and row["audio"].startswith(f"{origin}/storage/")
    ]


# -- over HTTP -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_audio_urls_are_presigned_and_serve_deterministic_bytes() -> None:
    """A recording's presigned URL downloads fixed bytes with Content-Length, token-free."""
    async with (
        serve(clock=fixed_clock(), calls_per_day=80) as (sim, session),
        serve(clock=fixed_clock(), calls_per_day=80) as (twin, _),
    ):
        urls = await _signed_audio(session, sim)
        twin_urls = await _signed_audio(session, twin)
        url = urls[0]
        download = await fetch(session, url)
        again = await fetch(session, url)
        twin_download = await fetch(session, twin_urls[0])
    query = dict(parse_qsl(urlsplit(url).query))
    assert set(query) >= AMZ_PARAMS
    assert query["X-Amz-Expires"] == "3600"
    assert query["X-Amz-Date"] == dt.datetime.fromtimestamp(FIXED_NOW, dt.UTC).strftime(
        "%Y%m%dT%H%M%SZ"
    )
    assert download.status == 200
    assert download.headers["Content-Type"] == "audio/mpeg"
    assert int(download.headers["Content-Length"]) == len(download.body)
    assert len(download.body) >= 2048
    assert again.body == download.body
    assert twin_download.body == download.body
    assert sim.observed.token_leaks == []


@pytest.mark.asyncio
async def test_unsigned_and_null_audio_are_served_as_is() -> None:
    """Recordings whose audio is null or on another storage are not signed."""
    async with serve(calls_per_day=400, shape="a") as (sim, session):
        rows = (await report(session, sim, "recordings", "Mar 01, 2024 - Mar 07, 2024")).page().rows
    audio = [row["audio"] for row in rows]
    assert None in audio
    unsigned = [a for a in audio if a and a.startswith("https://cdn.example.test/")]
    assert unsigned
    assert all("X-Amz" not in a for a in unsigned)


@pytest.mark.asyncio
async def test_tampered_signature_is_refused_with_xml() -> None:
    """A URL whose signature was changed gets 403 SignatureDoesNotMatch in S3 XML."""
    async with serve() as (sim, session):
        url = (await _signed_audio(session, sim))[0]
        signature = dict(parse_qsl(urlsplit(url).query))["X-Amz-Signature"]
        forged = url.replace(signature, signature[::-1])
        reply = await fetch(session, forged)
        unsigned = await fetch(session, url.split("?")[0])
    assert reply.status == 403
    assert reply.headers["Content-Type"].startswith("application/xml")
    assert b"<Code>SignatureDoesNotMatch</Code>" in reply.body
    assert unsigned.status == 403
    assert b"<Code>AuthorizationQueryParametersError</Code>" in unsigned.body


@pytest.mark.asyncio
async def test_expired_audio_url_is_access_denied_until_fetched_again() -> None:
    """Past audio_expiry the URL answers 403 AccessDenied; the report then mints a fresh one."""
    clock = FakeClock(FIXED_NOW)
    async with serve(clock=clock, audio_expiry=60) as (sim, session):
        url = (await _signed_audio(session, sim))[0]
        assert dict(parse_qsl(urlsplit(url).query))["X-Amz-Expires"] == "60"
        fresh = await fetch(session, url)
        clock.now += 60
        at_expiry = await fetch(session, url)
        clock.now += 1
        expired = await fetch(session, url)
        renewed = (await _signed_audio(session, sim))[0]
        refetched = await fetch(session, renewed)
    assert fresh.status == 200
    assert at_expiry.status == 200
    assert expired.status == 403
    assert b"<Code>AccessDenied</Code>" in expired.body
    assert b"Request has expired" in expired.body
    assert renewed != url
    assert refetched.status == 200
    assert refetched.body == fresh.body


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("headers", "params"),
    [
        ({"Authorization": f"Bearer {TOKEN}"}, {}),
        ({"Authorization": TOKEN}, {}),
        ({}, {"access_token": TOKEN}),
        ({}, {"api_token": TOKEN}),
    ],
)
async def test_token_sent_to_storage_is_recorded_as_a_leak(
    headers: dict[str, str], params: dict[str, str]
) -> None:
    """Fetching audio with the API token (header or query) is noted in token_leaks."""
    async with serve() as (sim, session):
        url = (await _signed_audio(session, sim))[0]
        query = dict(parse_qsl(urlsplit(url).query)) | params
        reply = await fetch(session, url.split("?")[0], params=query, headers=headers)
    assert reply.status == 200
    assert sim.observed.token_leaks == [urlsplit(url).path]
    assert urlsplit(url).path in {path for path, _ in sim.observed.storage_leaks}
    assert TOKEN not in repr(sim.observed.requests)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("headers", "trace"),
    [
        ({"Accept": "application/json"}, "Accept"),
        ({"User-Agent": "voiceapi-async/1.0"}, "User-Agent"),
        ({"X-Api-Key": "anything"}, "X-Api-Key"),
        ({"Cookie": f"session={TOKEN}"}, "token"),
    ],
)
async def test_api_headers_sent_to_storage_are_recorded(
    headers: dict[str, str], trace: str
) -> None:
    """A storage request with an API header (or the token anywhere) lands in storage_leaks."""
    async with serve() as (sim, session):
        url = (await _signed_audio(session, sim))[0]
        clean = await fetch(session, url)
        assert sim.observed.storage_leaks == []
        reply = await fetch(session, url, headers=headers)
    assert clean.status == reply.status == 200
    assert sim.observed.storage_leaks == [(urlsplit(url).path, trace)]
    assert sim.observed.storage_requests == 2


@pytest.mark.asyncio
async def test_audio_size_setting_sets_the_file_sizes() -> None:
    """audio_size bounds every file; one int fixes the size; bytes follow seed and path."""
    async with (
        serve(audio_size=(100_000, 300_000)) as (sim, session),
        serve(audio_size=5000) as (fixed, _),
    ):
        urls = await _signed_audio(session, sim)
        bodies = [(await fetch(session, url)).body for url in urls[:6]]
        one = (await fetch(session, (await _signed_audio(session, fixed))[0])).body
    assert all(100_000 <= len(body) <= 300_000 for body in bodies)
    assert len({len(body) for body in bodies}) > 1
    assert [sim.audio_content(url) for url in urls[:6]] == bodies
    assert len(one) == 5000
    assert sim.observed.storage_bytes == sum(map(len, bodies))


@pytest.mark.parametrize("sizes", [(0, 10), (10, 5)])
def test_audio_size_is_validated(sizes: tuple[int, int]) -> None:
    """audio_size must be a range of at least one byte."""
    with pytest.raises(ValueError, match="audio_size"):
        SimulatorConfig(audio_size=sizes)


@pytest.mark.asyncio
async def test_storage_faults_are_served_and_counted() -> None:
    """Storage answers S3 5xx errors and cuts bodies short, per its own fault settings."""
    faults = Faults(storage_error=0.4, storage_reset=0.4)
    async with serve(faults=faults, audio_size=(20_000, 40_000)) as (sim, session):
        urls = await _signed_audio(session, sim)
        statuses = []
        for url in urls[:12]:
            try:
                reply = await fetch(session, url)
                statuses.append(reply.status)
                if reply.status == 200:
                    assert reply.body == sim.audio_content(url)
                else:
                    assert b"<Error><Code>" in reply.body
            except aiohttp.ClientPayloadError:
                statuses.append(-1)
    assert {500, 503} & set(statuses)
    assert -1 in statuses
    assert sim.observed.storage_faults["storage_error"] == sum(s >= 500 for s in statuses)
    assert sim.observed.storage_faults["storage_reset"] == statuses.count(-1)
    assert sim.observed.faults == {}  # the API's own fault counts are apart


@pytest.mark.asyncio
async def test_bandwidth_limit_paces_each_download() -> None:
    """With storage_bandwidth set, a download takes at least its size over the bandwidth."""
    faults = Faults(storage_bandwidth=200_000)
    async with serve(faults=faults, audio_size=60_000) as (sim, session):
        url = (await _signed_audio(session, sim))[0]
        started = asyncio.get_running_loop().time()
        reply = await fetch(session, url)
        elapsed = asyncio.get_running_loop().time() - started
    assert reply.body == sim.audio_content(url)
    assert elapsed >= 0.9 * 60_000 / 200_000


# -- the storage alone -----------------------------------------------------------------

PATH = "/storage/rc/240305/3b0a6c8e-0000-1000-8000-000000000001.mp3"
MINTED = dt.datetime(2024, 3, 5, 6, 30, tzinfo=dt.UTC)


def signed_query(storage: AudioStorage, path: str = PATH) -> dict[str, str]:
    url = storage.sign("http://127.0.0.1:9", path, MINTED)
    parts = urlsplit(url)
    assert parts.path == path
    return dict(parse_qsl(parts.query))


def test_signed_urls_look_like_s3_presigned_urls() -> None:
    """sign() adds every X-Amz-* parameter, expiring after the configured time."""
    query = signed_query(AudioStorage(1, expires=900))
    assert set(query) >= AMZ_PARAMS
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["X-Amz-Date"] == "20240305T063000Z"
    assert query["X-Amz-Expires"] == "900"
    assert query["X-Amz-Credential"].endswith("/20240305/local/s3/aws4_request")


def test_a_fresh_signature_is_valid() -> None:
    """A URL checks out from the moment it is minted until it expires, inclusive."""
    storage = AudioStorage(1, expires=3600)
    query = signed_query(storage)
    assert storage.check(PATH, query, MINTED) is None
    assert storage.check(PATH, query, MINTED + dt.timedelta(seconds=3600)) is None


def test_an_expired_signature_is_access_denied() -> None:
    """One second past X-Amz-Expires the URL is AccessDenied."""
    storage = AudioStorage(1, expires=3600)
    query = signed_query(storage)
    assert storage.check(PATH, query, MINTED + dt.timedelta(seconds=3601)) == "AccessDenied"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("X-Amz-Signature", "0" * 64),
        ("X-Amz-Expires", "86400"),
        ("X-Amz-Date", "20240306T063000Z"),
    ],
)
def test_a_tampered_url_does_not_match(key: str, value: str) -> None:
    """Changing the signature, the expiry or the date breaks the signature."""
    storage = AudioStorage(1)
    query = signed_query(storage) | {key: value}
    assert storage.check(PATH, query, MINTED) == "SignatureDoesNotMatch"


def test_a_signature_is_bound_to_its_path_and_seed() -> None:
    """A signature for one path, or from another seed's key, does not match."""
    query = signed_query(AudioStorage(1))
    assert AudioStorage(1).check(PATH.replace("0001", "0002"), query, MINTED) == (
        "SignatureDoesNotMatch"
    )
    assert AudioStorage(2).check(PATH, query, MINTED) == "SignatureDoesNotMatch"


@pytest.mark.parametrize("missing", ["X-Amz-Date", "X-Amz-Expires"])
def test_a_malformed_url_is_refused(missing: str) -> None:
    """Without a date or an expiry the query-string authentication is malformed."""
    query = signed_query(AudioStorage(1))
    del query[missing]
    assert AudioStorage(1).check(PATH, query, MINTED) == "AuthorizationQueryParametersError"


def test_same_seed_signs_identically() -> None:
    """Two storages with one seed mint the same URL for the same path and moment."""
    assert signed_query(AudioStorage(4)) == signed_query(AudioStorage(4))


def test_audio_bytes_are_deterministic_per_path() -> None:
    """Each path has fixed content of 2 to 34 KiB; another path or seed has other content."""
    content = audio_bytes(PATH)
    assert content == audio_bytes(PATH)
    assert 2048 <= len(content) <= 34 * 1024
    assert content.startswith(b"ID3")
    assert content != audio_bytes(PATH.replace("0001", "0002"))
    assert content != audio_bytes(PATH, seed=1)


@pytest.mark.parametrize("chunk", [1, 7, 4096, 65536])
def test_audio_content_in_chunks_is_the_whole_file(chunk: int) -> None:
    """Reading a file in chunks of any size, or any range, gives the same bytes."""
    content = AudioContent(PATH, sizes=(50_000, 50_000))
    whole = audio_bytes(PATH, sizes=(50_000, 50_000))
    assert len(whole) == content.size == 50_000
    assert b"".join(content.chunks(chunk)) == whole
    assert content.read(3, 9000) == whole[3:9000]
    assert content.read(49_990, 60_000) == whole[49_990:]


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("AccessDenied", "Request has expired"),
        ("SignatureDoesNotMatch", "signature"),
        ("NoSuchKey", "does not exist"),
    ],
)
def test_s3_errors_are_xml(code: str, message: str) -> None:
    """Storage errors are S3-style XML documents with a Code and a Message."""
    body = s3_error(code).decode()
    assert body.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    assert f"<Code>{code}</Code>" in body
    assert message in body
