"""A recordings window's audio: which files it needs, which are already there, the rest fetched.

Each recording's audio goes to ``OUT/audio/date=YYYY-MM-DD/<id><extension>``, the
day its ``created_at`` falls in (in the dataset's zone). The manifest records every
file as it lands (size, SHA-256), so a rerun fetches only what is missing or changed.

Only presigned links are fetched: a link without a signature in its query is not
the storage the API hands out (the contract's links are presigned and expire), so
it is counted as ``unsigned`` and its row keeps the link without a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import zoneinfo
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

import attrs

from voiceapi_async import (
    AudioError,
    AudioResult,
    AudioStatus,
    Recording,
    VoiceClient,
    audio_filename,
)
from voiceapi_async.backfill._manifest import AudioEntry, Manifest
from voiceapi_async.backfill._verify import AUDIO_DIR, file_sha256
from voiceapi_async.export import AudioFile, is_presigned


def audio_path(recording: Recording, timezone: str) -> PurePosixPath:
    """Return a recording's audio file, relative to the output directory."""
    day = recording.created_at.astimezone(zoneinfo.ZoneInfo(timezone)).date()
    return PurePosixPath(AUDIO_DIR, f"date={day.isoformat()}", audio_filename(recording))


@attrs.define
class AudioTally:
    """What one window's audio came to."""

    files: dict[str, AudioFile] = attrs.field(factory=dict)
    """Every file the window's rows name, by recording id."""
    downloaded: int = 0
    downloaded_bytes: int = 0
    present: int = 0
    """Files already complete (recorded and intact, or found whole on disk)."""
    unsigned: int = 0
    """Recordings whose link is not presigned: not fetched."""


async def window_audio(
    client: VoiceClient,
    manifest: Manifest,
    key: str,
    recordings: Sequence[Recording],
    out_dir: Path,
    *,
    timezone: str,
    temp_dir: Path | None,
    verify: bool,
    on_file: Callable[[AudioResult], None],
) -> AudioTally:
    """Bring every audio file of a window's recordings into place and record it.

    Raises:
        AudioError: one or more files could not be downloaded (the others are kept
            and recorded); the message names the first recording that failed.
    """
    tally = AudioTally()
    wanted: dict[str, PurePosixPath] = {}
    for recording in recordings:
        if recording.audio is None:
            continue
        if not is_presigned(recording.audio):
            tally.unsigned += 1
            continue
        wanted[recording.id] = audio_path(recording, timezone)
    known = manifest.audio_files(wanted)
    todo: list[Recording] = []
    changed: set[str] = set()
    for recording in recordings:
        relative = wanted.get(recording.id)
        if relative is None:
            continue
        entry = known.get(recording.id)
        if entry is not None and entry.path != str(relative):
            (out_dir / entry.path).unlink(missing_ok=True)  # another zone's day: moved
        elif entry is not None and await _intact(out_dir / entry.path, entry, verify):
            tally.files[recording.id] = AudioFile(entry.path, entry.sha256)
            tally.present += 1
            continue
        elif entry is not None:
            changed.add(recording.id)  # recorded, but missing or changed on disk
        todo.append(recording)
    failures: list[AudioResult] = []
    results = client.download_audios(
        todo,
        out_dir,
        name=lambda recording: str(wanted[recording.id]),
        existing=lambda recording, _: recording.id not in changed,
        temp_dir=temp_dir,
    )
    async with contextlib.aclosing(results):
        async for result in results:
            if result.status is AudioStatus.FAILED:
                failures.append(result)
                continue
            if result.relative_path is None:
                continue  # no audio after all (a renewal found none)
            landed = str(result.relative_path)
            manifest.record_audio(
                AudioEntry(result.recording_id, key, landed, result.size, result.sha256)
            )
            tally.files[result.recording_id] = AudioFile(landed, result.sha256)
            if result.status is AudioStatus.DOWNLOADED:
                tally.downloaded += 1
                tally.downloaded_bytes += result.size
            else:
                tally.present += 1
            on_file(result)
    if failures:
        failures.sort(key=lambda result: result.recording_id)
        first = failures[0]
        raise AudioError(
            f"{len(failures)} of {len(wanted)} audio file(s) could not be downloaded "
            f"(the others are kept), first {first.error}",
        )
    return tally


def forget_audio(manifest: Manifest, recordings: Sequence[Recording], out_dir: Path) -> None:
    """Remove the recorded audio of these recordings (a dataset rebuilt without audio)."""
    known = manifest.audio_files(recording.id for recording in recordings)
    for entry in known.values():
        (out_dir / entry.path).unlink(missing_ok=True)
    if known:
        manifest.forget_audio(known)


async def _intact(path: Path, entry: AudioEntry, verify: bool) -> bool:
    if not verify:
        return _size(path) == entry.size  # one stat: cheaper than a thread hop
    return await asyncio.to_thread(_hashes_to, path, entry)


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def _hashes_to(path: Path, entry: AudioEntry) -> bool:
    return _size(path) == entry.size and file_sha256(path) == entry.sha256
