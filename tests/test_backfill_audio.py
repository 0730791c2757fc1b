"""Backfills with audio: files per day, rows naming them, the manifest, verify, reruns and kills.

The simulator's storage is the only storage contacted: links that are not presigned
(the simulator's ``cdn.example.test`` ones) are counted and never fetched.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import signal
from pathlib import Path

import pytest

from tests.test_backfill_output import lock_body, wait_for
from tests.test_cli import TOKEN, start, voiceapi
from voiceapi_async import ClientConfig, Recording, Report, RetryPolicy, VoiceClient, Window
from voiceapi_async.backfill import (
    Backfill,
    Manifest,
    SettingsMismatchError,
    Summary,
    WindowState,
    plan,
    verify,
    verify_sample,
)
from voiceapi_async.backfill._audio import audio_path
from voiceapi_async.backfill._verify import read_rows
from voiceapi_async.export import get_format, is_presigned
from voiceapi_async.testing import Faults, SimulatorConfig, VoiceSimulator, run_simulator
from voiceapi_async.testing._plugin import serve_in_thread

TZ = "Asia/Kolkata"
FAST = RetryPolicy(attempts=3, wait_initial=0.0, wait_max=0.01, wait_jitter=0.0)
IST = dt.timezone(dt.timedelta(hours=5, minutes=30))
RANGE = (dt.datetime(2024, 3, 1, tzinfo=IST), dt.datetime(2024, 3, 3, 23, 59, 59, tzinfo=IST))


async def run(sim: VoiceSimulator, out: Path, *, audio: bool = True, **options: object) -> Summary:
    config = ClientConfig(base_url=sim.base_url, token=TOKEN, timezone=TZ, rate_limit=0, retry=FAST)
    async with VoiceClient(config) as client:
        with Manifest(out / "_manifest.sqlite") as manifest:
            runner = Backfill(
                client,
                manifest,
                get_format("jsonl"),
                out,
                audio=audio,
                **options,  # type: ignore[arg-type]
            )
            return await runner.run(plan(Report.RECORDINGS, "2024-03-01", "2024-03-03", TZ))


async def recordings(sim: VoiceSimulator) -> list[Recording]:
    config = ClientConfig(base_url=sim.base_url, token=TOKEN, timezone=TZ, rate_limit=0)
    async with VoiceClient(config) as client:
        return [r async for r in client.recordings("2024-03-01", "2024-03-03")]


def audio_hashes(out: Path) -> dict[str, str]:
    return {
        path.relative_to(out).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted((out / "audio").rglob("*"))
        if path.is_file()
    }


def rows(out: Path) -> dict[str, dict[str, object]]:
    found: dict[str, dict[str, object]] = {}
    for path in sorted((out / "recordings").rglob("part-0.*")):
        found.update({str(row["id"]): row for row in read_rows(path)})
    return found


@pytest.mark.asyncio
async def test_every_presigned_recording_lands_in_its_day_and_its_row_names_it(
    tmp_path: Path,
) -> None:
    """Each file is storage's bytes at audio/date=<day>/<id>.mp3; rows and manifest agree."""
    async with run_simulator(token=TOKEN, calls_per_day=150, rate_limit=0) as sim:
        summary = await run(sim, tmp_path)
        truth = await recordings(sim)
        presigned = [r for r in truth if r.audio and is_presigned(r.audio)]
        for recording in presigned:
            path = tmp_path / audio_path(recording, TZ)
            assert path.read_bytes() == sim.audio_content(str(recording.audio)), recording.id
        config = ClientConfig(base_url=sim.base_url, token=TOKEN, timezone=TZ, rate_limit=0)
        async with VoiceClient(config) as client:
            with Manifest(tmp_path / "_manifest.sqlite") as manifest:
                sampled = await verify_sample(client, tmp_path, manifest, 3)
                checked = verify(tmp_path, manifest)
                recorded = manifest.audio_files()
        assert sim.observed.token_leaks == []
        assert sim.observed.storage_leaks == []
    assert summary.ok
    assert summary.audio_files == len(presigned) == len(recorded) > 0
    assert summary.audio_bytes == sum(e.size for e in recorded.values())
    assert summary.audio_unsigned == sum(1 for r in truth if r.audio and not is_presigned(r.audio))
    assert summary.audio_unsigned > 0  # the simulator's cdn.example.test links: never fetched
    assert sampled.ok, sampled.problems
    assert checked.ok, checked.problems
    assert checked.reports["recordings"].audio_files == len(presigned)
    by_id = rows(tmp_path)
    for recording in truth:
        row = by_id[recording.id]
        if recording in presigned:
            entry = recorded[recording.id]
            assert row["audio_file"] == entry.path == audio_path(recording, TZ).as_posix()
            data = (tmp_path / entry.path).read_bytes()
            assert row["audio_sha256"] == entry.sha256 == hashlib.sha256(data).hexdigest()
        else:
            assert row["audio_file"] is None
            assert row["audio_sha256"] is None
    assert audio_path(presigned[0], TZ).parts[1] == (
        f"date={presigned[0].created_at.astimezone(IST).date().isoformat()}"
    )


@pytest.mark.asyncio
async def test_a_rerun_downloads_nothing_and_writes_the_same_bytes(tmp_path: Path) -> None:
    """A rerun, by size or by --verify, makes no storage request and leaves every file alike."""
    async with run_simulator(token=TOKEN, calls_per_day=30, rate_limit=0) as sim:
        await run(sim, tmp_path)
        files = audio_hashes(tmp_path)
        parts = {p: p.read_bytes() for p in sorted(tmp_path.rglob("part-0.*"))}
        before = sim.observed.storage_requests
        again = await run(sim, tmp_path, force={w.key for w in plan_keys()})
        checked = await run(sim, tmp_path, verify=True, force={w.key for w in plan_keys()})
        after = sim.observed.storage_requests
    assert before > 0
    assert after == before
    assert again.written == checked.written == 3
    assert again.audio_files == checked.audio_files == 0
    assert again.audio_present == len(files)
    assert audio_hashes(tmp_path) == files
    assert {p: p.read_bytes() for p in sorted(tmp_path.rglob("part-0.*"))} == parts


def plan_keys() -> list[Window]:
    return list(plan(Report.RECORDINGS, "2024-03-01", "2024-03-03", TZ))


@pytest.mark.asyncio
async def test_a_changed_audio_file_is_found_by_verify_and_fetched_again(tmp_path: Path) -> None:
    """Verify names an edited, a missing and a stray audio file; a --verify rerun repairs them."""
    async with run_simulator(token=TOKEN, calls_per_day=30, rate_limit=0) as sim:
        await run(sim, tmp_path)
        files = audio_hashes(tmp_path)
        edited, removed = sorted(files)[:2]
        data = bytearray((tmp_path / edited).read_bytes())
        data[100] ^= 0xFF
        (tmp_path / edited).write_bytes(bytes(data))  # same size: only the hash tells
        (tmp_path / removed).unlink()
        stray = tmp_path / "audio" / "date=2024-03-02" / "someone-elses.mp3"
        stray.write_bytes(b"ID3")
        with Manifest(tmp_path / "_manifest.sqlite") as manifest:
            found = verify(tmp_path, manifest)
        stray.unlink()
        before = sim.observed.storage_requests
        repaired = await run(sim, tmp_path, verify=True, force={w.key for w in plan_keys()})
        fetched = sim.observed.storage_requests - before
        with Manifest(tmp_path / "_manifest.sqlite") as manifest:
            after = verify(tmp_path, manifest)
    problems = {(p.path, p.kind) for p in found.problems}
    assert problems == {
        (edited, "checksum"),
        (removed, "missing"),
        ("audio/date=2024-03-02/someone-elses.mp3", "stray"),
    }
    assert repaired.audio_files == 2
    assert fetched == 2
    assert audio_hashes(tmp_path) == files
    assert after.ok, after.problems


@pytest.mark.asyncio
async def test_a_failed_download_fails_its_window_only_and_a_retry_completes_it(
    tmp_path: Path,
) -> None:
    """A file that cannot be written fails its window, naming the recording; others are done."""
    async with run_simulator(token=TOKEN, calls_per_day=30, rate_limit=0) as sim:
        truth = await recordings(sim)
        victim = next(
            r
            for r in sorted(truth, key=lambda r: r.id)
            if r.audio and is_presigned(r.audio) and r.created_at.astimezone(IST).day == 2
        )
        blocker = tmp_path / audio_path(victim, TZ)
        blocker.mkdir(parents=True)  # a folder where the file goes: its rename fails
        failed = await run(sim, tmp_path)
        with Manifest(tmp_path / "_manifest.sqlite") as manifest:
            states = {e.key: e.state for e in manifest.entries()}
            kept = manifest.audio_files()
        blocker.rmdir()
        retried = await run(sim, tmp_path, retry_failed=True)
        with Manifest(tmp_path / "_manifest.sqlite") as manifest:
            checked = verify(tmp_path, manifest)
    assert [key for key, _ in failed.failed] == ["recordings/2024-03-02"]
    assert victim.id in failed.failed[0][1]
    assert "could not be downloaded" in failed.failed[0][1]
    assert sorted(states.values()) == [WindowState.DONE, WindowState.DONE, WindowState.FAILED]
    assert victim.id not in kept
    assert any(e.window_key == "recordings/2024-03-02" for e in kept.values())  # others kept
    assert retried.ok
    assert retried.written == 1
    assert retried.audio_files == 1  # only the one that failed
    assert checked.ok, checked.problems


@pytest.mark.asyncio
async def test_switching_audio_on_is_a_settings_change(tmp_path: Path) -> None:
    """A dataset written without audio refuses an --audio run unless it rebuilds."""
    async with run_simulator(token=TOKEN, calls_per_day=20, rate_limit=0) as sim:
        await run(sim, tmp_path, audio=False)
        assert not (tmp_path / "audio").exists()
        with pytest.raises(SettingsMismatchError, match="audio was off, now on"):
            await run(sim, tmp_path)
        rebuilt = await run(sim, tmp_path, rebuild=True)
        with pytest.raises(SettingsMismatchError, match="audio was on, now off"):
            await run(sim, tmp_path, audio=False)
        dropped = await run(sim, tmp_path, audio=False, rebuild=True)
        with Manifest(tmp_path / "_manifest.sqlite") as manifest:
            pins = manifest.settings("recordings")
            checked = verify(tmp_path, manifest)
    assert rebuilt.audio_files > 0
    assert dropped.ok
    assert pins["audio"] == "off"
    assert audio_hashes(tmp_path) == {}  # a rebuild without audio leaves none behind
    assert checked.ok, checked.problems


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT])
def test_stopped_mid_download_a_rerun_gives_the_files_of_an_uninterrupted_run(
    tmp_path: Path, stop: signal.Signals
) -> None:
    """Killed or interrupted while files stream, a rerun leaves exactly the reference's files."""
    config = SimulatorConfig(
        token=TOKEN,
        calls_per_day=60,
        rate_limit=0,
        audio_size=(64 * 1024, 160 * 1024),
        faults=Faults(storage_bandwidth=256 * 1024),
    )
    args = ["--from", "2024-03-01", "--to", "2024-03-03", "--rate-limit", "0", "--audio"]
    with serve_in_thread(config) as sim:
        env = {"VOICEAPI_BASE_URL": sim.base_url, "VOICEAPI_TOKEN": TOKEN, "VOICEAPI_TIMEZONE": TZ}
        reference = tmp_path / "reference"
        whole = voiceapi("backfill", "recordings", "--out", str(reference), *args, env=env)
        assert whole.returncode == 0, whole.stderr
        out = tmp_path / "out"
        process = start("backfill", "recordings", "--out", str(out), *args, env=env)
        try:
            wait_for(lambda: len(audio_hashes(out)) >= 3, "the first audio files")
            wait_for(lambda: list((out / "_tmp").rglob("*.part")), "a file in flight")
            os.kill(process.pid, stop)
            _, stderr = process.communicate(timeout=60)
        finally:
            process.kill()
        if stop == signal.SIGINT:
            assert process.returncode == 130, stderr
            assert "Traceback" not in stderr
            assert not list(out.rglob("*.part"))  # Ctrl-C cleans up on its way out
        else:
            assert lock_body(out)["pid"] == process.pid
        interrupted = audio_hashes(out)
        assert 0 < len(interrupted) < len(audio_hashes(reference))
        before = sim.observed.storage_requests
        rerun = voiceapi("backfill", "recordings", "--out", str(out), *args, env=env)
        fetched = sim.observed.storage_requests - before
        checked = voiceapi("verify", "--out", str(out), env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert fetched <= len(audio_hashes(reference)) - len(interrupted)  # none fetched twice
    assert audio_hashes(out) == audio_hashes(reference)
    assert [p.name for p in out.rglob("*") if p.name.endswith(".part")] == []
    assert list((out / "_tmp").iterdir()) == []
    ours = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("part-0.*"))}
    theirs = {p.relative_to(reference): p.read_bytes() for p in sorted(reference.rglob("part-0.*"))}
    assert ours == theirs


def test_the_command_refuses_a_switch_to_audio_with_exit_2(tmp_path: Path) -> None:
    """A --audio run over a dataset written without it exits 2 naming the setting."""
    config = SimulatorConfig(token=TOKEN, calls_per_day=10, rate_limit=0)
    args = ["--from", "2024-03-01", "--to", "2024-03-01", "--rate-limit", "0"]
    with serve_in_thread(config) as sim:
        env = {"VOICEAPI_BASE_URL": sim.base_url, "VOICEAPI_TOKEN": TOKEN, "VOICEAPI_TIMEZONE": TZ}
        first = voiceapi("backfill", "all", "--out", str(tmp_path), *args, env=env)
        switched = voiceapi("backfill", "all", "--out", str(tmp_path), "--audio", *args, env=env)
        storage = sim.observed.storage_requests
    assert first.returncode == 0, first.stderr
    assert switched.returncode == 2, switched.stderr
    assert "audio was off, now on" in switched.stderr
    assert storage == 0


def test_the_verify_command_names_an_edited_audio_file(tmp_path: Path) -> None:
    """Voiceapi verify exits 1 and names an audio file whose bytes changed; 0 before."""
    config = SimulatorConfig(token=TOKEN, calls_per_day=20, rate_limit=0)
    args = ["--from", "2024-03-01", "--to", "2024-03-01", "--rate-limit", "0", "--audio"]
    with serve_in_thread(config) as sim:
        env = {"VOICEAPI_BASE_URL": sim.base_url, "VOICEAPI_TOKEN": TOKEN, "VOICEAPI_TIMEZONE": TZ}
        done = voiceapi("backfill", "recordings", "--out", str(tmp_path), *args, env=env)
    assert done.returncode == 0, done.stderr
    good = voiceapi("verify", "--out", str(tmp_path))
    edited = sorted(audio_hashes(tmp_path))[0]
    (tmp_path / edited).write_bytes(b"ID3 not the recording")
    bad = voiceapi("verify", "--out", str(tmp_path))
    assert good.returncode == 0, good.stdout + good.stderr
    assert "audio files" in good.stdout
    assert bad.returncode == 1
    assert "size" in bad.stdout
    assert edited.rsplit("/", 1)[-1][:8] in bad.stdout
