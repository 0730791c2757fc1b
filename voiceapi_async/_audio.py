"""Recording audio: one result per recording, link renewal, many files at once.

The HTTP side lives in ``_download``; this module decides what to fetch and
when: a file already in place is not fetched again, a link past its
``X-Amz-Date`` + ``X-Amz-Expires`` (or that storage calls expired) is renewed
through a callback (the client fetches the recording again), and many
recordings are downloaded concurrently, each reported as it completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import enum
import hashlib
import time
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import attrs

from voiceapi_async._download import StorageClient
from voiceapi_async._errors import AudioError, AudioExpiredError, VoiceAPIError, first_error
from voiceapi_async._models import Recording

DEFAULT_EXTENSION = ".mp3"
"""The extension of an audio file whose URL path has none."""
EXTRA_TASKS = 2
"""Downloads started beyond ``audio_max_in_flight`` so a slot never waits for the source."""

Renew = Callable[[Recording], Awaitable[str | None]]
"""Fetch a recording again and return its fresh audio link (None: it has none now)."""
NameFor = Callable[[Recording], "str | Path"]
"""A recording's file, relative to the download directory."""
Existing = Callable[[Recording, Path], bool]
"""Whether a file already at a recording's destination is good (True: keep it)."""

_AMZ_DATE = "%Y%m%dT%H%M%SZ"


class AudioStatus(enum.StrEnum):
    """What happened to one recording's audio."""

    DOWNLOADED = "downloaded"
    """The file was downloaded and renamed into place."""
    ALREADY_PRESENT = "already_present"
    """A complete file was already at the destination; nothing was fetched."""
    NO_AUDIO = "no_audio"
    """The recording has no audio link: nothing to fetch (not a failure)."""
    FAILED = "failed"
    """The download failed; ``error`` tells why. No file was written."""


@attrs.frozen
class AudioResult:
    """The outcome of one recording's audio download.

    Attributes:
        recording_id: the recording's ``id``.
        status: downloaded, already present, no audio or failed.
        path: the file (the destination as given, joined to the directory), or None
            when there is none.
        relative_path: ``path`` relative to the download directory (for
            :meth:`~voiceapi_async.VoiceClient.download_audios`), else None.
        size: the file's size in bytes (0 when there is no file).
        sha256: the file's SHA-256 in hex ("" when there is no file).
        renewals: times the link was renewed for this download.
        error: why it failed (an :class:`~voiceapi_async.AudioError` or another
            :class:`~voiceapi_async.VoiceAPIError`), else None.
    """

    recording_id: str
    status: AudioStatus
    path: Path | None = None
    relative_path: PurePosixPath | None = None
    size: int = 0
    sha256: str = ""
    renewals: int = 0
    error: VoiceAPIError | None = attrs.field(default=None, eq=False)

    @property
    def ok(self) -> bool:
        """Whether the file is in place (downloaded or already present) or there is none to get."""
        return self.status is not AudioStatus.FAILED


def audio_filename(recording: Recording) -> str:
    """Return ``<recording id><extension>``, the extension taken from the URL's path.

    ``.mp3`` when the path has none (or the recording has no URL).
    """
    suffix = ""
    if recording.audio:
        suffix = PurePosixPath(urlsplit(recording.audio).path).suffix
    if not suffix or len(suffix) > 8 or not suffix[1:].isalnum():
        suffix = DEFAULT_EXTENSION
    return f"{recording.id}{suffix.lower()}"


def link_expires_at(url: str) -> float | None:
    """Return when a presigned link expires (Unix time), from its ``X-Amz-*`` parameters.

    None when the URL does not carry both ``X-Amz-Date`` and ``X-Amz-Expires``.
    """
    query = {key.lower(): value for key, value in parse_qsl(urlsplit(url).query)}
    try:
        minted = dt.datetime.strptime(query["x-amz-date"], _AMZ_DATE).replace(tzinfo=dt.UTC)
        lifetime = int(query["x-amz-expires"])
    except (KeyError, ValueError):
        return None
    return minted.timestamp() + lifetime


class AudioDownloader:
    """Downloads recordings' audio for a client: renewal, skipping and concurrency."""

    def __init__(
        self,
        storage: StorageClient,
        renew: Renew,
        *,
        renewals: int,
        max_in_flight: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._storage = storage
        self._renew = renew
        self._renewals = renewals
        self._max_in_flight = max_in_flight
        self._clock = clock

    async def one(
        self,
        recording: Recording,
        path: Path,
        *,
        relative: PurePosixPath | None = None,
        existing: Existing | None = None,
        temp_dir: Path | None = None,
    ) -> AudioResult:
        """Download one recording's audio to ``path``; failures come back as the result."""
        if recording.audio is None:
            return AudioResult(recording.id, AudioStatus.NO_AUDIO)
        present = await asyncio.to_thread(_hash_file, path)
        if present is not None and (existing is None or existing(recording, path)):
            size, digest = present
            return AudioResult(
                recording.id, AudioStatus.ALREADY_PRESENT, path, relative, size, digest
            )
        expires = link_expires_at(recording.audio)
        url: str | None = recording.audio
        renewed = 0
        try:
            if expires is not None and expires < self._clock() and self._renewals > 0:
                url = await self._renewed(recording)  # the clock is trusted once, not again
                renewed += 1
            while True:
                if url is None:
                    return AudioResult(recording.id, AudioStatus.NO_AUDIO, renewals=renewed)
                try:
                    done = await self._storage.download(
                        url, path, recording_id=recording.id, temp_dir=temp_dir
                    )
                except AudioExpiredError:
                    if renewed >= self._renewals:
                        raise
                    url = await self._renewed(recording)
                    renewed += 1
                    continue
                return AudioResult(
                    recording.id,
                    AudioStatus.DOWNLOADED,
                    path,
                    relative,
                    done.size,
                    done.sha256,
                    renewed,
                )
        except VoiceAPIError as exc:
            return AudioResult(recording.id, AudioStatus.FAILED, renewals=renewed, error=exc)
        except OSError as exc:
            error = AudioError(
                f"could not write {path}: {exc.strerror or exc}", recording_id=recording.id
            )
            return AudioResult(recording.id, AudioStatus.FAILED, renewals=renewed, error=error)

    async def _renewed(self, recording: Recording) -> str | None:
        """Return the recording's fresh link; an API failure names the recording."""
        try:
            return await self._renew(recording)
        except AudioError:
            raise
        except VoiceAPIError as exc:
            raise AudioExpiredError(
                f"the audio link expired and fetching the recording again failed: {exc}",
                recording_id=recording.id,
            ) from exc

    async def many(
        self,
        recordings: Iterable[Recording] | AsyncIterable[Recording],
        directory: Path,
        *,
        name: NameFor,
        existing: Existing | None = None,
        temp_dir: Path | None = None,
    ) -> AsyncGenerator[AudioResult, None]:
        """Yield each recording's result as it completes; see ``VoiceClient.download_audios``."""
        results: asyncio.Queue[AudioResult | BaseException | None] = asyncio.Queue()
        room = asyncio.Semaphore(self._max_in_flight + EXTRA_TASKS)

        async def run(recording: Recording) -> None:
            relative = _relative(recording, name)
            if isinstance(relative, AudioError):
                failed = AudioResult(recording.id, AudioStatus.FAILED, error=relative)
                results.put_nowait(failed)
                return
            result = await self.one(
                recording,
                directory / relative,
                relative=relative,
                existing=existing,
                temp_dir=temp_dir,
            )
            results.put_nowait(result)

        async def drive() -> None:
            try:
                async with (
                    asyncio.TaskGroup() as group,
                    contextlib.aclosing(_each(recordings)) as source,
                ):
                    while True:
                        await room.acquire()  # before reading: the source is read lazily
                        recording = await anext(source, None)
                        if recording is None:
                            break
                        group.create_task(run(recording))
            except BaseException as exc:  # handed to the consumer
                if isinstance(exc, asyncio.CancelledError):
                    raise
                results.put_nowait(exc)
                return
            results.put_nowait(None)

        driver = asyncio.create_task(drive(), name="voiceapi_async audio downloads")
        try:
            while (item := await results.get()) is not None:
                if isinstance(item, BaseException):
                    raise first_error(item)
                room.release()
                yield item
        finally:
            driver.cancel()
            await asyncio.wait({driver})


async def _each(
    recordings: Iterable[Recording] | AsyncIterable[Recording],
) -> AsyncGenerator[Recording, None]:
    """Read a plain or async source lazily; an async source is closed when this ends."""
    if isinstance(recordings, AsyncIterable):
        iterator: Any = aiter(recordings)
        try:
            async for recording in iterator:
                yield _checked(recording)
        finally:
            close = getattr(iterator, "aclose", None)
            if close is not None:
                await close()
    else:
        for recording in recordings:
            yield _checked(recording)


def _checked(recording: object) -> Recording:
    if not isinstance(recording, Recording):
        raise TypeError(
            f"download_audios takes Recording objects (from client.recordings()), "
            f"not {type(recording).__name__}"
        )
    return recording


def _relative(recording: Recording, name: NameFor) -> PurePosixPath | AudioError:
    """Return the recording's relative destination, or the error saying why it is unsafe."""
    raw = name(recording)
    relative = PurePosixPath(Path(raw).as_posix())
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        return AudioError(
            f"its destination {str(raw)!r} is not a relative path inside the directory",
            recording_id=recording.id,
        )
    return relative


def _hash_file(path: Path) -> tuple[int, str] | None:
    """Return an existing file's size and SHA-256, or None when there is no file."""
    if not path.is_file():
        return None
    with open(path, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256")
        return handle.tell(), digest.hexdigest()
