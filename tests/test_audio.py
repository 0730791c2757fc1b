"""Recording audio: downloads against the simulator's storage, over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import attrs
import pendulum
import pytest
from aiohttp import web

from voiceapi_async import (
    AudioError,
    AudioExpiredError,
    AudioResult,
    AudioStatus,
    AudioTooLargeError,
    AuthenticationError,
    ClientConfig,
    Recording,
    RetryPolicy,
    VoiceClient,
    audio_filename,
    link_expires_at,
)
from voiceapi_async._audio import EXTRA_TASKS
from voiceapi_async.testing import Faults, VoiceSimulator, run_simulator

TOKEN = "tok-audio-5e1f0c"
FAST = RetryPolicy(attempts=6, wait_initial=0.0, wait_max=0.01, wait_jitter=0.0)
DAY = "2024-03-05"


class Clock:
    """A simulator clock a test moves by hand (it starts at the real time)."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        """Return the time the test set."""
        return self.now


class Ticking:
    """A clock that moves ``step`` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.now = time.time()
        self.step = step

    def __call__(self) -> float:
        """Return the time, then move it on."""
        self.now += self.step
        return self.now


def client_for(sim: VoiceSimulator, **settings: Any) -> VoiceClient:
    options: dict[str, Any] = {
        "base_url": sim.base_url,
        "token": TOKEN,
        "timezone": "Asia/Kolkata",
        "rate_limit": 0,
        "retry": FAST,
    }
    return VoiceClient(**(options | settings))


@contextlib.asynccontextmanager
async def serving(**settings: Any) -> AsyncIterator[VoiceSimulator]:
    defaults: dict[str, Any] = {"token": TOKEN, "rate_limit": 0, "calls_per_day": 60}
    settings = defaults | settings
    async with run_simulator(**settings) as sim:
        yield sim


def origin(sim: VoiceSimulator) -> str:
    return sim.base_url.removesuffix("/api/v2/")


async def local_recordings(client: VoiceClient, sim: VoiceSimulator) -> list[Recording]:
    """The day's recordings whose audio is on the simulator or absent (never the internet)."""
    recordings = await client.recordings(DAY, DAY).collect()
    return [r for r in recordings if r.audio is None or r.audio.startswith(origin(sim))]


def with_audio(recordings: list[Recording]) -> list[Recording]:
    return [r for r in recordings if r.audio is not None]


def assert_exact(sim: VoiceSimulator, recording: Recording, result: AudioResult) -> None:
    assert recording.audio is not None
    expected = sim.audio_content(recording.audio)
    assert result.path is not None
    assert result.path.read_bytes() == expected
    assert result.size == len(expected)
    assert result.sha256 == hashlib.sha256(expected).hexdigest()


def leftovers(directory: Path) -> list[Path]:
    """Temporary files left in a directory tree."""
    return [p for p in directory.rglob("*") if p.name.endswith(".part")]


def no_api_traces(sim: VoiceSimulator) -> None:
    assert sim.observed.storage_requests > 0
    assert sim.observed.storage_leaks == []
    assert sim.observed.token_leaks == []


async def collect(iterator: AsyncIterator[AudioResult]) -> list[AudioResult]:
    return [result async for result in iterator]


# -- everything arrives ----------------------------------------------------------------


@pytest.mark.asyncio
async def test_every_file_arrives_byte_exact_without_api_headers(tmp_path: Path) -> None:
    """Each recording's file is the storage's bytes; storage never sees the token or API headers."""
    async with (
        serving(audio_size=(1024, 300_000), faults=Faults(storage_latency_ms=20)) as sim,
        client_for(sim, audio_max_in_flight=4) as client,
    ):
        recordings = [*await local_recordings(client, sim), make_recording(None, "silent")]
        api_requests = client.stats.requests
        results = await collect(client.download_audios(recordings, tmp_path))
        assert client.stats.requests == api_requests  # storage is not counted as the API
    by_id = {r.recording_id: r for r in results}
    assert sorted(by_id) == sorted(r.id for r in recordings)
    assert any(r.audio is None for r in recordings)
    for recording in recordings:
        result = by_id[recording.id]
        if recording.audio is None:
            assert result.status is AudioStatus.NO_AUDIO
            assert result.path is None
            continue
        assert result.status is AudioStatus.DOWNLOADED, result.error
        assert result.relative_path is not None
        assert result.path == tmp_path / str(result.relative_path)
        assert str(result.relative_path) == audio_filename(recording)
        assert_exact(sim, recording, result)
    no_api_traces(sim)
    assert sim.observed.storage_max_in_flight == 4  # concurrent, within the limit
    assert leftovers(tmp_path) == []


@pytest.mark.asyncio
async def test_api_session_headers_never_reach_storage(tmp_path: Path) -> None:
    """Even a caller's session with default headers is not used for storage."""
    import aiohttp

    async with (
        serving() as sim,
        aiohttp.ClientSession(headers={"X-Api-Key": TOKEN, "Accept": "application/json"}) as s,
        client_for(sim, session=s, user_agent="voiceapi-test") as client,
    ):
        recordings = with_audio(await local_recordings(client, sim))[:3]
        results = await collect(client.download_audios(recordings, tmp_path))
    assert {r.status for r in results} == {AudioStatus.DOWNLOADED}
    no_api_traces(sim)


@pytest.mark.asyncio
async def test_download_audio_one_file_then_already_present(tmp_path: Path) -> None:
    """download_audio writes one file; again, the complete file is kept and not fetched."""
    async with serving() as sim, client_for(sim) as client:
        recordings = await local_recordings(client, sim)
        recording = with_audio(recordings)[0]
        target = tmp_path / "one" / "a.mp3"
        first = await client.download_audio(recording, target)
        requests = sim.observed.storage_requests
        second = await client.download_audio(recording, target)
        assert sim.observed.storage_requests == requests
        none = await client.download_audio(make_recording(None, "silent"), tmp_path / "none.mp3")
        forced = await client.download_audio(recording, target)
    assert first.status is AudioStatus.DOWNLOADED
    assert_exact(sim, recording, first)
    assert second.status is AudioStatus.ALREADY_PRESENT
    assert (second.size, second.sha256) == (first.size, first.sha256)
    assert forced.status is AudioStatus.ALREADY_PRESENT
    assert none.status is AudioStatus.NO_AUDIO
    assert not (tmp_path / "none.mp3").exists()


@pytest.mark.asyncio
async def test_existing_callback_refuses_a_file_and_it_is_fetched_again(tmp_path: Path) -> None:
    """A file the caller's check rejects is downloaded again and replaced whole."""
    async with serving() as sim, client_for(sim) as client:
        recording = with_audio(await local_recordings(client, sim))[0]
        target = tmp_path / audio_filename(recording)
        target.write_bytes(b"not the audio")
        results = await collect(
            client.download_audios([recording], tmp_path, existing=lambda rec, path: False)
        )
    assert results[0].status is AudioStatus.DOWNLOADED
    assert_exact(sim, recording, results[0])


# -- expiry ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_links_expiring_mid_run_are_renewed_and_files_arrive(tmp_path: Path) -> None:
    """Links storage calls expired are renewed once each; every file then arrives exactly."""
    clock = Clock()
    async with serving(clock=clock, audio_expiry=60) as sim, client_for(sim) as client:
        recordings = with_audio(await local_recordings(client, sim))
        clock.now += 61  # storage's time: every link just expired; the client's clock disagrees
        results = await collect(client.download_audios(recordings, tmp_path))
        denied = [r for r in sim.observed.requests if r.path.startswith("/storage/")]
    assert {r.status for r in results} == {AudioStatus.DOWNLOADED}
    assert {r.renewals for r in results} == {1}
    by_id = {r.recording_id: r for r in results}
    for recording in recordings:
        assert_exact(sim, recording, by_id[recording.id])
    assert sum(r.status == 403 for r in denied) == len(recordings)
    no_api_traces(sim)


@pytest.mark.asyncio
async def test_links_past_their_expiry_are_renewed_before_downloading(tmp_path: Path) -> None:
    """A link whose X-Amz-Date + X-Amz-Expires has passed is renewed without asking storage."""
    clock = Clock(time.time() - 7200)
    async with serving(clock=clock, audio_expiry=3600) as sim, client_for(sim) as client:
        recordings = with_audio(await local_recordings(client, sim))[:4]
        for recording in recordings:
            assert recording.audio is not None
            expires = link_expires_at(recording.audio)
            assert expires is not None
            assert expires < time.time()
        clock.now = time.time()
        results = await collect(client.download_audios(recordings, tmp_path))
        storage = [r for r in sim.observed.requests if r.path.startswith("/storage/")]
    assert {r.status for r in results} == {AudioStatus.DOWNLOADED}
    assert {r.renewals for r in results} == {1}
    assert [r.status for r in storage] == [200] * len(recordings)


@pytest.mark.asyncio
async def test_renewals_are_bounded(tmp_path: Path) -> None:
    """Links that are always expired are renewed audio_renewals times, then reported expired."""
    async with (
        serving(clock=Ticking(5.0), audio_expiry=1) as sim,
        client_for(sim, audio_renewals=2) as client,
    ):
        recordings = with_audio(await local_recordings(client, sim))[:3]
        results = await collect(client.download_audios(recordings, tmp_path))
    assert {r.status for r in results} == {AudioStatus.FAILED}
    assert {r.renewals for r in results} == {2}
    assert all(isinstance(r.error, AudioExpiredError) for r in results)
    assert sim.observed.storage_requests == 3 * len(recordings)
    message = str(results[0].error)
    assert "X-Amz-Signature=[REDACTED]" in message
    assert "X-Amz-Credential=[REDACTED]" in message
    assert list(tmp_path.iterdir()) == []


# -- failures ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_storage_faults_are_retried(tmp_path: Path) -> None:
    """5xx answers and connections cut mid-body are retried; every file arrives exactly."""
    faults = Faults(storage_error=0.25, storage_reset=0.25)
    async with (
        serving(audio_size=(20_000, 200_000), faults=faults, seed=3) as sim,
        client_for(sim, retry=RetryPolicy(attempts=12, wait_initial=0, wait_max=0.01)) as client,
    ):
        recordings = with_audio(await local_recordings(client, sim))
        results = await collect(client.download_audios(recordings, tmp_path))
    by_id = {r.recording_id: r for r in results}
    for recording in recordings:
        assert by_id[recording.id].status is AudioStatus.DOWNLOADED, by_id[recording.id].error
        assert_exact(sim, recording, by_id[recording.id])
    assert sim.observed.storage_faults["storage_error"] > 0
    assert sim.observed.storage_faults["storage_reset"] > 0
    assert leftovers(tmp_path) == []


@pytest.mark.asyncio
async def test_stalled_bodies_time_out_and_are_retried(tmp_path: Path) -> None:
    """A body that stops flowing for audio_timeout is abandoned and fetched again."""
    faults = Faults(storage_stall=0.5, stall_seconds=1.0)
    async with (
        serving(audio_size=(20_000, 60_000), faults=faults, seed=5) as sim,
        client_for(
            sim, audio_timeout=0.3, retry=RetryPolicy(attempts=10, wait_initial=0)
        ) as client,
    ):
        recordings = with_audio(await local_recordings(client, sim))
        results = await collect(client.download_audios(recordings, tmp_path))
    by_id = {r.recording_id: r for r in results}
    for recording in recordings:
        assert_exact(sim, recording, by_id[recording.id])
    assert sim.observed.storage_faults["storage_stall"] > 0
    assert leftovers(tmp_path) == []


@pytest.mark.asyncio
async def test_one_failure_is_reported_while_the_others_complete(tmp_path: Path) -> None:
    """A link storage refuses fails that recording alone, with a redacted error."""
    async with serving() as sim, client_for(sim) as client:
        recordings = with_audio(await local_recordings(client, sim))
        bad = recordings[1]
        assert bad.audio is not None
        signature = dict(parse_qsl(urlsplit(bad.audio).query))["X-Amz-Signature"]
        forged = attrs.evolve(bad, audio=bad.audio.replace(signature, signature[::-1]))
        mixed = [*recordings[:1], forged, *recordings[2:]]
        escaping = attrs.evolve(recordings[0], id="../escape")
        results = await collect(client.download_audios([*mixed, escaping], tmp_path))
    by_id = {r.recording_id: r for r in results}
    failed = by_id[bad.id]
    assert failed.status is AudioStatus.FAILED
    assert isinstance(failed.error, AudioError)
    assert failed.error.status == 403
    assert failed.error.recording_id == bad.id
    assert "SignatureDoesNotMatch" in str(failed.error)
    assert signature not in str(failed.error)
    assert signature[::-1] not in str(failed.error)
    assert by_id["../escape"].status is AudioStatus.FAILED
    assert not (tmp_path.parent / "escape.mp3").exists()
    for recording in [*recordings[:1], *recordings[2:]]:
        assert_exact(sim, recording, by_id[recording.id])


@pytest.mark.asyncio
async def test_the_size_limit_holds(tmp_path: Path) -> None:
    """A file larger than audio_max_bytes is an AudioTooLargeError and leaves no file."""
    async with (
        serving(audio_size=(1000, 100_000)) as sim,
        client_for(sim, audio_max_bytes=50_000) as client,
    ):
        recordings = with_audio(await local_recordings(client, sim))
        results = await collect(client.download_audios(recordings, tmp_path))
    by_id = {r.recording_id: r for r in results}
    sizes = {r.id: len(sim.audio_content(r.audio or "")) for r in recordings}
    assert any(size > 50_000 for size in sizes.values())
    assert any(size <= 50_000 for size in sizes.values())
    for recording in recordings:
        result = by_id[recording.id]
        if sizes[recording.id] > 50_000:
            assert isinstance(result.error, AudioTooLargeError)
            assert not (tmp_path / audio_filename(recording)).exists()
        else:
            assert_exact(sim, recording, result)
    assert leftovers(tmp_path) == []


# -- a hand-made storage: no Content-Length, short bodies ---------------------------------


@contextlib.asynccontextmanager
async def odd_storage() -> AsyncIterator[tuple[str, dict[str, int]]]:
    """Serve ``/chunked/<n>`` (no Content-Length) and ``/short`` (announces more than it sends)."""
    hits: dict[str, int] = {}

    async def chunked(request: web.Request) -> web.StreamResponse:
        hits["chunked"] = hits.get("chunked", 0) + 1
        response = web.StreamResponse(headers={"Content-Type": "audio/mpeg"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        remaining = int(request.match_info["size"])
        while remaining > 0:
            piece = min(remaining, 16_384)
            await response.write(b"a" * piece)
            remaining -= piece
        await response.write_eof()
        return response

    async def short(request: web.Request) -> web.StreamResponse:
        hits["short"] = hits.get("short", 0) + 1
        response = web.StreamResponse(headers={"Content-Length": "10000"})
        await response.prepare(request)
        await response.write(b"b" * 4000)
        assert request.transport is not None
        request.transport.close()
        return response

    app = web.Application()
    app.router.add_get("/chunked/{size}", chunked)
    app.router.add_get("/short", short)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}", hits
    finally:
        await runner.cleanup()


def make_recording(url: str | None, ident: str = "rec-1") -> Recording:
    return Recording(
        id=ident,
        call_from="+911234",
        call_to="+915678",
        audio=url,
        duration=pendulum.duration(seconds=5),
        agent=None,
        created_at=pendulum.datetime(2024, 3, 5, 10, tz="Asia/Kolkata"),
    )


def offline_client(**settings: Any) -> VoiceClient:
    return VoiceClient(
        base_url="http://127.0.0.1:9/api/v2/", token=TOKEN, timezone="UTC", retry=FAST, **settings
    )


@pytest.mark.asyncio
async def test_size_limit_holds_without_content_length(tmp_path: Path) -> None:
    """A body without Content-Length is stopped as it passes the limit; a smaller one arrives."""
    async with odd_storage() as (base, _), offline_client(audio_max_bytes=100_000) as client:
        big_one, small_one = (
            make_recording(f"{base}/chunked/300000"),
            make_recording(f"{base}/chunked/90000"),
        )
        big = await client.download_audio(big_one, tmp_path / "big")
        small = await client.download_audio(small_one, tmp_path / "ok")
    assert isinstance(big.error, AudioTooLargeError)
    assert not (tmp_path / "big").exists()
    assert small.status is AudioStatus.DOWNLOADED
    assert (tmp_path / "ok").read_bytes() == b"a" * 90_000
    assert leftovers(tmp_path) == []


@pytest.mark.asyncio
async def test_a_short_body_is_retried_then_an_error_and_no_file(tmp_path: Path) -> None:
    """A body shorter than its Content-Length is retried, then reported; nothing is visible."""
    async with odd_storage() as (base, hits), offline_client() as client:
        result = await client.download_audio(make_recording(f"{base}/short"), tmp_path / "s.mp3")
    assert result.status is AudioStatus.FAILED
    assert isinstance(result.error, AudioError)
    assert result.error.retryable
    assert hits["short"] == FAST.attempts
    assert list(tmp_path.iterdir()) == []


# -- cancellation, laziness, memory ----------------------------------------------------------


@pytest.mark.asyncio
async def test_closing_the_iterator_early_leaves_no_partial_file(tmp_path: Path) -> None:
    """Leaving the loop cancels every download; a rerun completes the same bytes."""
    faults = Faults(storage_bandwidth=400_000)
    async with (
        serving(audio_size=(60_000, 240_000), faults=faults) as sim,
        client_for(sim, audio_max_in_flight=3) as client,
    ):
        recordings = with_audio(await local_recordings(client, sim))
        pulled = 0

        async def source() -> AsyncIterator[Recording]:
            nonlocal pulled
            for rec in recordings:
                pulled += 1
                yield rec

        downloads = client.download_audios(source(), tmp_path)
        first = await anext(downloads)
        assert pulled <= 3 + EXTRA_TASKS  # in flight, plus the small buffer
        assert sim.observed.storage_max_in_flight <= 3
        await downloads.aclose()
        assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("voiceapi_async")]
        assert leftovers(tmp_path) == []
        kept = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
        assert 1 <= len(kept) < len(recordings)
        rerun = await collect(client.download_audios(recordings, tmp_path))
    assert first.status is AudioStatus.DOWNLOADED
    statuses = {r.recording_id: r.status for r in rerun}
    for recording in recordings:
        name = audio_filename(recording)
        expected = AudioStatus.ALREADY_PRESENT if name in kept else AudioStatus.DOWNLOADED
        assert statuses[recording.id] is expected
        assert recording.audio is not None
        assert (tmp_path / name).read_bytes() == sim.audio_content(recording.audio)
    assert leftovers(tmp_path) == []


@pytest.mark.asyncio
async def test_memory_stays_flat_for_a_large_file(tmp_path: Path) -> None:
    """A 24 MB file downloads with a traced peak far below its size."""
    size = 24 * 1024 * 1024
    async with serving(audio_size=size) as sim, client_for(sim) as client:
        target = with_audio(await local_recordings(client, sim))[0]
        tracemalloc.start()
        try:
            result = await client.download_audio(target, tmp_path / "big.mp3")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert result.status is AudioStatus.DOWNLOADED
    assert result.size == size
    assert target.audio is not None
    assert result.sha256 == hashlib.sha256(sim.audio_content(target.audio)).hexdigest()
    assert peak < size / 8


# -- settings and pure helpers ---------------------------------------------------------------


def test_audio_settings_have_defaults_and_come_from_the_environment() -> None:
    """The audio settings default sensibly and are read from VOICEAPI_AUDIO_*."""
    default = ClientConfig(base_url="http://h/", token="t", timezone="UTC")
    assert (default.audio_max_in_flight, default.audio_renewals) == (8, 2)
    assert default.audio_max_bytes == 512 * 1024 * 1024
    env = {
        "VOICEAPI_BASE_URL": "http://h/",
        "VOICEAPI_TOKEN": "t",
        "VOICEAPI_TIMEZONE": "UTC",
        "VOICEAPI_AUDIO_MAX_IN_FLIGHT": "3",
        "VOICEAPI_AUDIO_MAX_BYTES": "1000",
        "VOICEAPI_AUDIO_TIMEOUT": "2.5",
        "VOICEAPI_AUDIO_RENEWALS": "0",
    }
    config = ClientConfig.from_env(env)
    assert (config.audio_max_in_flight, config.audio_max_bytes) == (3, 1000)
    assert (config.audio_timeout, config.audio_renewals) == (2.5, 0)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("audio_max_in_flight", 0),
        ("audio_max_bytes", 0),
        ("audio_timeout", 0.0),
        ("audio_renewals", -1),
    ],
)
def test_audio_settings_are_validated(setting: str, value: float) -> None:
    """Out-of-range audio settings are refused, naming the setting."""
    settings: dict[str, Any] = {setting: value}
    with pytest.raises(ValueError, match=setting):
        ClientConfig(base_url="http://h/", token="t", timezone="UTC", **settings)


def test_link_expiry_is_read_from_the_amz_parameters() -> None:
    """X-Amz-Date + X-Amz-Expires give the expiry; without them there is none."""
    url = "https://b.s3.test/a.mp3?X-Amz-Date=20240305T063000Z&X-Amz-Expires=3600&X-Amz-Signature=x"
    assert link_expires_at(url) == pendulum.datetime(2024, 3, 5, 7, 30).timestamp()
    assert link_expires_at("https://b.s3.test/a.mp3") is None
    assert link_expires_at("https://b.s3.test/a.mp3?X-Amz-Date=bad&X-Amz-Expires=1") is None


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://s.test/rc/a.WAV?X-Amz-Date=1", "rec-1.wav"),
        ("https://s.test/rc/a?x=1", "rec-1.mp3"),
        (None, "rec-1.mp3"),
    ],
)
def test_audio_filename_takes_the_extension_from_the_url_path(url: str | None, name: str) -> None:
    """The file is the recording id with the URL path's extension, .mp3 when it has none."""
    assert audio_filename(make_recording(url)) == name


def test_audio_errors_redact_signed_urls() -> None:
    """An AudioError shows the URL without its signature or credential."""
    error = AudioError(
        "boom",
        recording_id="r",
        url="https://s.test/a.mp3?X-Amz-Credential=AKIA%2Fx&X-Amz-Signature=deadbeef",
    )
    assert "deadbeef" not in str(error)
    assert "AKIA" not in str(error)
    assert "deadbeef" not in error.url


@pytest.mark.asyncio
async def test_temp_dir_holds_the_temporary_files(tmp_path: Path) -> None:
    """With temp_dir, temporary files are made there (a file in its place fails the download)."""
    staging = tmp_path / "_tmp"
    blocked = tmp_path / "not-a-dir"
    blocked.write_bytes(b"")
    async with serving() as sim, client_for(sim, audio_max_in_flight=2) as client:
        recordings = with_audio(await local_recordings(client, sim))[:4]
        out = tmp_path / "audio"
        done = await collect(client.download_audios(recordings[:2], out, temp_dir=staging))
        failed = await client.download_audio(recordings[2], out / "x.mp3", temp_dir=blocked)
    assert {r.status for r in done} == {AudioStatus.DOWNLOADED}
    assert staging.is_dir()
    assert list(staging.iterdir()) == []
    assert leftovers(out) == []
    assert failed.status is AudioStatus.FAILED
    assert isinstance(failed.error, AudioError)
    assert "could not write" in str(failed.error)
    assert not (out / "x.mp3").exists()
    for recording in recordings[:2]:
        assert recording.audio is not None
        assert (out / audio_filename(recording)).read_bytes() == sim.audio_content(recording.audio)


@pytest.mark.asyncio
async def test_a_source_of_the_wrong_type_raises(tmp_path: Path) -> None:
    """Anything but Recording objects in the source is a TypeError naming what came."""
    async with offline_client() as client:
        with pytest.raises(TypeError, match="not dict"):
            await collect(client.download_audios([{"id": "x"}], tmp_path))  # type: ignore[list-item]
        with pytest.raises(TypeError, match="not str"):
            await client.download_audio("https://x", tmp_path / "x")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="closed"):
        client.download_audios([], tmp_path)


@pytest.mark.asyncio
async def test_a_failed_renewal_is_reported_for_its_recording(tmp_path: Path) -> None:
    """When fetching the recording again fails, the result names the recording and the cause."""
    clock = Clock(time.time() - 7200)
    async with serving(clock=clock, audio_expiry=60) as sim:
        async with client_for(sim) as client:
            recordings = with_audio(await local_recordings(client, sim))[:2]
        async with client_for(sim, token="wrong-token") as stranger:
            results = await collect(stranger.download_audios(recordings, tmp_path))
    assert {r.status for r in results} == {AudioStatus.FAILED}
    for result in results:
        assert isinstance(result.error, AudioExpiredError)
        assert result.error.recording_id == result.recording_id
        assert "fetching the recording again failed" in str(result.error)
    assert sim.observed.storage_requests == 0
    assert list(tmp_path.iterdir()) == []


@pytest.mark.asyncio
async def test_a_record_stream_source_is_read_lazily_and_its_errors_raised(
    tmp_path: Path,
) -> None:
    """A RecordStream feeds the downloads as it is read; an API error reading it is raised."""

    async def local_only(stream: AsyncIterator[Recording]) -> AsyncIterator[Recording]:
        async for rec in stream:  # links to other hosts would leave the machine
            if rec.audio is None or rec.audio.startswith(origin(sim)):
                yield rec

    async with serving() as sim:
        async with client_for(sim) as client:
            source = local_only(aiter(client.recordings(DAY, DAY)))
            results = await collect(client.download_audios(source, tmp_path))
            expected = await local_recordings(client, sim)
        async with client_for(sim, token="wrong-token") as stranger:
            with pytest.raises(AuthenticationError):
                await collect(stranger.download_audios(stranger.recordings(DAY, DAY), tmp_path))
    assert sorted(r.recording_id for r in results) == sorted(r.id for r in expected)
    by_id = {r.recording_id: r for r in results}
    for recording in with_audio(expected):
        assert_exact(sim, recording, by_id[recording.id])
