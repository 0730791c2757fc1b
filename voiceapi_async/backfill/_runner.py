"""The backfill runner: windows through one client, each written whole, state in a manifest."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Protocol

import attrs
import pendulum

from voiceapi_async import (
    AudioResult,
    AudioStatus,
    AuthenticationError,
    Call,
    NotFoundError,
    PermissionDeniedError,
    Record,
    Recording,
    RecordStream,
    Report,
    TransportError,
    VoiceAPIError,
    VoiceClient,
    Window,
)
from voiceapi_async.backfill._audio import AudioTally, forget_audio, window_audio
from voiceapi_async.backfill._errors import OutputError, os_error
from voiceapi_async.backfill._files import partition_path, write_atomically
from voiceapi_async.backfill._lock import OutputLock
from voiceapi_async.backfill._manifest import Manifest, WindowEntry, WindowState
from voiceapi_async.backfill._settings import (
    DatasetSettings,
    IncompleteRebuildError,
    SettingsMismatchError,
)
from voiceapi_async.backfill._verify import file_sha256
from voiceapi_async.export import ExportFormat, sort_records

logger = logging.getLogger("voiceapi_async.backfill")

FATAL_ERRORS = (
    AuthenticationError,
    PermissionDeniedError,
    NotFoundError,
    TransportError,
    OutputError,
)
"""Errors that would fail every window alike: they stop the run at once.

An :class:`OutputError` (a full disk, an unwritable directory, a damaged manifest)
puts its window back to pending, so a rerun after fixing the cause takes it again.

A transport error reaches the runner only after every retry of a request failed:
the network or the host is down, and the next windows would fail the same way.
"""


class Progress(Protocol):
    """What a runner reports as it goes (the CLI draws bars or prints lines)."""

    def planned(self, total: int, skipped: int) -> None:
        """The run has ``total`` windows, ``skipped`` of them already done."""

    def window_done(self, window: Window, records: int) -> None:
        """A window was written."""

    def window_failed(self, window: Window, error: BaseException) -> None:
        """A window failed and was recorded as failed."""

    # Optional (a reporter without it is not told):
    # def audio_file(self, result: AudioResult) -> None:
    #     """A recording's audio file landed (downloaded, or found whole on disk)."""


class _Silent:
    def planned(self, total: int, skipped: int) -> None:
        return None

    def window_done(self, window: Window, records: int) -> None:
        return None

    def window_failed(self, window: Window, error: BaseException) -> None:
        return None


@attrs.define
class WindowResult:
    """What one window produced."""

    window: Window
    records: int
    pages: int
    output: Path
    checksum: str
    audio_files: int = 0
    """Audio files the window's rows name (downloaded now or already there)."""


@attrs.define
class Summary:
    """The outcome of a run."""

    windows: int = 0
    """Windows in the plan."""
    written: int = 0
    """Windows written by this run."""
    skipped: int = 0
    """Windows already done (or failed earlier, without ``retry_failed``)."""
    repaired: int = 0
    """Windows done earlier whose file was missing or changed, written again by this run."""
    failed: list[tuple[str, str]] = attrs.field(factory=list)
    """Windows that failed, now or earlier and not retried: (key, error)."""
    records: int = 0
    pages: int = 0
    retries: int = 0
    rate_limited: int = 0
    requests: int = 0
    per_page: int | None = None
    """The page size the server applied (None: no paged answer)."""
    elapsed: float = 0.0
    audio_files: int = 0
    """Audio files downloaded by this run."""
    audio_bytes: int = 0
    """Bytes of audio downloaded by this run."""
    audio_present: int = 0
    """Audio files already complete: not downloaded again."""
    audio_unsigned: int = 0
    """Recordings whose audio link is not presigned: not fetched (their rows keep the link)."""

    @property
    def records_per_second(self) -> float:
        """Records written a second."""
        return self.records / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def requests_per_1000_records(self) -> float | None:
        """Requests sent for every 1,000 records written (None before any record)."""
        return 1000 * self.requests / self.records if self.records else None

    @property
    def ok(self) -> bool:
        """Whether every window of the plan is done."""
        return not self.failed


class Backfill:
    """Runs windows concurrently through one client; each window is written atomically.

    Args:
        client: the client every window is read with (its limits apply to the run).
        manifest: where window states live.
        fmt: the export format every window is written in (:mod:`voiceapi_async.export`).
        out_dir: the output directory (partitions and the temporary directory).
        concurrency: windows read at once.
        retry_failed: take windows that failed in an earlier run again.
        force: keys to read again even when done (the lookback of incremental runs).
        progress: told about every window.
        lock: an :class:`OutputLock` of ``out_dir`` the caller holds (to keep it across
            several runs); by default each :meth:`run` takes its own.
        timezone: the zone the windows are cut in (default: the client's); pinned
            with the format, its compression and the export schema version.
        rebuild: accept settings other than the pinned ones and rewrite every
            window not yet written in them (failed ones too; an interrupted
            rebuild resumes); the windows must cover every day of the dataset.
            The new settings are pinned once every window is done.
        verify: check done windows' files by their full SHA-256 (default: by size);
            audio files too.
        audio: download each recording's audio to
            ``OUT/audio/date=YYYY-MM-DD/<id><extension>`` (the day of its
            ``created_at``); its rows name the file and its SHA-256. Pinned with
            the settings; a recordings window is done only once all its audio is in place.
        bulk: pace the run's requests as bulk work (the default): they leave a
            reserve of the token's quota (10% of the limit) to interactive clients
            on the same token; ``False`` lets them use it too.

    A done window is skipped only when it was written in this run's settings and
    its file is there with the recorded size (and, with ``verify``, checksum);
    otherwise it is read and written again.
    """

    def __init__(
        self,
        client: VoiceClient,
        manifest: Manifest,
        fmt: ExportFormat,
        out_dir: Path,
        *,
        concurrency: int = 4,
        retry_failed: bool = False,
        force: Collection[str] = (),
        progress: Progress | None = None,
        timezone: str | None = None,
        rebuild: bool = False,
        verify: bool = False,
        lock: OutputLock | None = None,
        audio: bool = False,
        bulk: bool = True,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be 1 or more, not {concurrency}")
        self.client = client
        self.manifest = manifest
        self.format = fmt
        self.out_dir = Path(out_dir)
        self.concurrency = concurrency
        self.retry_failed = retry_failed
        self.force = frozenset(force)
        self.progress: Progress = progress or _Silent()
        self.settings = DatasetSettings.of(fmt, timezone or client.config.timezone, audio=audio)
        self.audio = audio
        self.bulk = bulk
        self.rebuild = rebuild
        self.verify = verify
        self.lock = lock
        self._tmp_dir: Path | None = None
        self._summary: Summary | None = None

    def settings_for(self, report: Report | str) -> DatasetSettings:
        """This run's settings for a report (audio applies to recordings only)."""
        if str(report) == str(Report.RECORDINGS):
            return self.settings
        return attrs.evolve(self.settings, audio=False)

    def check(self, windows: Sequence[Window]) -> None:
        """Check that ``windows`` may run against the dataset; no request is made.

        :meth:`run` checks first too; call this to check every report before any runs.

        Raises:
            SettingsMismatchError: a report's partitions were written with other
                settings (without ``rebuild``).
            IncompleteRebuildError: ``rebuild`` with windows that miss days of the dataset.
        """
        if self.rebuild:
            self._check_coverage(windows)
            return
        for report in sorted({str(w.report) for w in windows}):
            pinned = self.manifest.settings(report)
            if pinned and (changes := self.settings_for(report).changes_from(pinned)):
                raise SettingsMismatchError(report, changes)

    async def run(self, windows: Sequence[Window]) -> Summary:
        """Run every window that needs it, holding the output directory's lock; return the summary.

        Raises:
            SettingsMismatchError: the dataset was written with other settings (without
                ``rebuild``); nothing is requested.
            IncompleteRebuildError: ``rebuild`` with windows that miss days of the dataset.
            OutputLockedError: another run holds the lock of ``out_dir``.
            AuthenticationError: (and the other :data:`FATAL_ERRORS`) at once.
            asyncio.CancelledError: when interrupted; running windows go back to pending.
        """
        if self.lock is None:
            with OutputLock(self.out_dir) as lock:
                return await self._run(windows, lock.tmp_dir)
        if not self.lock.held or self.lock.out_dir.resolve() != self.out_dir.resolve():
            raise ValueError(f"lock= must be a held OutputLock of {self.out_dir}")
        return await self._run(windows, self.lock.tmp_dir)

    async def _run(self, windows: Sequence[Window], tmp_dir: Path) -> Summary:
        reports = sorted({str(w.report) for w in windows})
        self.check(windows)
        if not self.rebuild:
            for report in reports:
                if not self.manifest.settings(report):
                    self.manifest.pin(report, self.settings_for(report).as_pins())
        started = time.monotonic()
        before = self.client.stats
        self._tmp_dir = tmp_dir
        self.manifest.register(windows)
        summary = Summary(windows=len(windows))
        self._summary = summary
        todo = []
        repairs: set[str] = set()
        for window in windows:
            entry = self.manifest.entry(window.key)
            state = entry.state if entry else WindowState.PENDING
            forced = window.key in self.force
            if not forced and entry and state is WindowState.DONE:
                fingerprint = self.settings_for(window.report).fingerprint
                if self.rebuild and entry.written_with != fingerprint:
                    todo.append(window)
                elif await self._intact(window, entry):
                    summary.skipped += 1
                else:
                    logger.warning("window %s: its file is missing or changed", window.key)
                    repairs.add(window.key)
                    todo.append(window)
            elif state is WindowState.FAILED and not (self.retry_failed or self.rebuild or forced):
                summary.skipped += 1
                summary.failed.append(
                    (window.key, (entry and entry.last_error) or "failed earlier")
                )
            else:
                todo.append(window)
        self.progress.planned(len(windows), summary.skipped)
        slots = asyncio.Semaphore(self.concurrency)

        async def tally(window: Window, step: Awaitable[WindowResult]) -> None:
            """Count a window's outcome; a fatal error goes on up."""
            try:
                result = await step
            except FATAL_ERRORS:
                raise
            except VoiceAPIError as exc:
                summary.failed.append((window.key, str(exc)))
                self.progress.window_failed(window, exc)
                return
            summary.written += 1
            summary.repaired += window.key in repairs
            summary.records += result.records
            summary.pages += result.pages
            self.progress.window_done(window, result.records)

        async def one(window: Window) -> None:
            async with slots:
                await tally(window, self.run_window(window))

        async def stretch(group: asyncio.TaskGroup, days: Sequence[Window]) -> None:
            left = await self._run_stretch(days, group, slots, tally)
            for window in left:
                await one(window)

        try:
            async with asyncio.TaskGroup() as group:
                for days in stretches(todo):
                    group.create_task(stretch(group, days) if len(days) > 1 else one(days[0]))
        except BaseExceptionGroup as group_error:
            # The first error (fatal, or not a VoiceAPIError) cancelled the other
            # windows; callers get it bare. No task of this group starts a group of its own.
            raise group_error.exceptions[0] from None
        finally:
            stats = self.client.stats
            summary.retries = stats.retries - before.retries
            summary.rate_limited = stats.rate_limited - before.rate_limited
            summary.requests = stats.requests - before.requests
            summary.per_page = stats.per_page
            summary.elapsed = time.monotonic() - started
        summary.failed.sort()
        if self.rebuild and summary.ok:
            for report in reports:
                self.manifest.pin(report, self.settings_for(report).as_pins())
        return summary

    def _check_coverage(self, windows: Sequence[Window]) -> None:
        planned = {
            (str(w.report), partition_path(w, self.format.extension).parent.name) for w in windows
        }
        held: dict[str, set[str]] = {}
        for entry in self.manifest.entries():
            if entry.state is WindowState.DONE and entry.output:
                folder = Path(entry.output).parent.name
                if (entry.report, folder) not in planned:
                    held.setdefault(entry.report, set()).add(folder.removeprefix("date="))
        for report in sorted({str(w.report) for w in windows}):
            if held.get(report):
                raise IncompleteRebuildError(report, sorted(held[report]))

    async def _intact(self, window: Window, entry: WindowEntry) -> bool:
        """Whether a done window's file is there as recorded (size; hash when asked or unknown)."""
        expected = str(partition_path(window, self.format.extension))
        if entry.output != expected:
            return False
        if entry.written_with not in (None, self.settings_for(window.report).fingerprint):
            return False  # an interrupted rebuild's window, in other settings
        path = self.out_dir / expected
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return False
        if entry.size is not None and size != entry.size:
            return False
        if entry.size is None or self.verify:
            if await asyncio.to_thread(file_sha256, path) != entry.checksum:
                return False
            if entry.size is None:
                self.manifest.record_size(entry.key, size)
        return True

    async def _run_stretch(
        self,
        days: Sequence[Window],
        group: asyncio.TaskGroup,
        slots: asyncio.Semaphore,
        tally: Callable[[Window, Awaitable[WindowResult]], Awaitable[None]],
    ) -> list[Window]:
        """Read consecutive days in one stream, writing each (in ``group``) once it is whole.

        One stream lets the client size its requests to the data (several sparse days
        in one request). A day's write waits for one of ``slots`` first, and so does
        the stream. Returns the days not handed to a writer: when the stream fails
        they are run one by one, so a bad day fails alone.
        """
        first, last = days[0], days[-1]
        left = {window.key: window for window in days}

        async def write(window: Window, records: list[Record], pages: int) -> None:
            try:
                await tally(window, self._finish(window, records, pages))
            finally:
                slots.release()

        async def hand_over(key: str, records: list[Record], pages: int) -> None:
            await slots.acquire()
            group.create_task(write(left.pop(key), records, pages))

        for window in days:
            self.manifest.start(window.key)
        stream = self._stream(first.start, last.end, first.report)
        key: str | None = None
        records: list[Record] = []
        pages = 0
        try:
            async with stream:
                async for page in stream.pages():
                    if page.window.key != key:
                        if key is not None:
                            await hand_over(key, records, pages)
                        key, records, pages = page.window.key, [], 0
                        if key not in left:  # the client cut the days otherwise
                            break
                    pages += 1
                    records.extend(page.records)
                else:
                    if key is not None:
                        await hand_over(key, records, pages)
        except FATAL_ERRORS:
            self._reset(left)
            raise
        except VoiceAPIError as exc:
            logger.warning(
                "%s..%s: %s; reading the %d days left one by one",
                first.key,
                last.key,
                exc,
                len(left),
            )
        except BaseException:
            self._reset(left)
            raise
        return list(left.values())

    def _reset(self, windows: Collection[str]) -> None:
        for key in windows:
            with contextlib.suppress(OutputError):
                self.manifest.reset(key)

    async def run_window(self, window: Window) -> WindowResult:
        """Fetch one window and write it whole, replacing its partition (idempotent).

        Raises:
            VoiceAPIError: the window could not be read; the manifest says failed.
        """
        self.manifest.start(window.key)
        with self._settling(window.key):
            records: list[Record] = []
            pages = 0
            async with self._stream(window.start, window.end, window.report) as stream:
                async for page in stream.pages():
                    pages += 1
                    records.extend(page.records)
        return await self._finish(window, records, pages)

    def _stream(
        self, start: pendulum.DateTime, end: pendulum.DateTime, report: Report
    ) -> RecordStream[Call] | RecordStream[Recording]:
        if report is Report.CALLS:
            return self.client.calls(start, end, bulk=self.bulk)
        return self.client.recordings(start, end, bulk=self.bulk)

    @contextlib.contextmanager
    def _settling(self, key: str) -> Iterator[None]:
        """Record in the manifest how a window's step ended, if it failed.

        A ``VoiceAPIError`` marks it failed; anything else (an :class:`OutputError`,
        an interrupt) puts it back to pending, for a rerun to take again.
        """
        try:
            yield
        except OutputError:
            with contextlib.suppress(OutputError):
                self.manifest.reset(key)
            raise
        except VoiceAPIError as exc:
            self.manifest.failed(key, str(exc))
            raise
        except BaseException:
            self.manifest.reset(key)
            raise

    async def _finish(self, window: Window, records: list[Record], pages: int) -> WindowResult:
        """Write a window read whole (its audio first), and mark it done.

        Raises:
            VoiceAPIError: the window's audio could not be fetched; the manifest says failed.
            OutputError: writing failed; the window is back to pending.
        """
        key = window.key
        with self._settling(key):
            records = sort_records(records)
            relative = partition_path(window, self.format.extension)
            tally = await self._audio_of(window, records)

            def write(file: IO[bytes]) -> None:
                with self.format.open(file, window.report) as writer:
                    writer.write(records, audio=tally.files)

            try:
                checksum = await asyncio.to_thread(
                    write_atomically, self.out_dir, relative, write, tmp_dir=self._tmp_dir
                )
                size = (self.out_dir / relative).stat().st_size
                for stale in self.manifest.outputs_in(str(relative.parent)):
                    if stale != str(relative):  # another format's file, only now replaced
                        (self.out_dir / stale).unlink(missing_ok=True)
            except OSError as exc:
                raise os_error(exc, "write", self.out_dir / relative) from None
        self.manifest.done(
            key,
            records=len(records),
            pages=pages,
            output=str(relative),
            checksum=checksum,
            size=size,
            written_with=self.settings_for(window.report).fingerprint,
        )
        logger.info("window %s: %d records in %d pages -> %s", key, len(records), pages, relative)
        return WindowResult(window, len(records), pages, relative, checksum, len(tally.files))

    async def _audio_of(self, window: Window, records: list[Record]) -> AudioTally:
        """Bring a recordings window's audio into place (or, without audio, drop recorded audio)."""
        if window.report is not Report.RECORDINGS:
            return AudioTally()
        recordings = [record for record in records if isinstance(record, Recording)]
        try:
            if not self.audio:
                forget_audio(self.manifest, recordings, self.out_dir)
                return AudioTally()
            tally = await window_audio(
                self.client,
                self.manifest,
                window.key,
                recordings,
                self.out_dir,
                timezone=self.settings.timezone,
                temp_dir=self._tmp_dir,
                verify=self.verify,
                on_file=self._audio_landed,
            )
        except OSError as exc:
            raise os_error(exc, "write audio in", self.out_dir / "audio") from None
        if tally.unsigned:
            logger.warning(
                "window %s: %d recording(s) link to audio that is not presigned: not fetched",
                window.key,
                tally.unsigned,
            )
        if self._summary is not None:
            self._summary.audio_present += tally.present
            self._summary.audio_unsigned += tally.unsigned
        return tally

    def _audio_landed(self, result: AudioResult) -> None:
        if self._summary is not None and result.status is AudioStatus.DOWNLOADED:
            self._summary.audio_files += 1
            self._summary.audio_bytes += result.size
        notify = getattr(self.progress, "audio_file", None)
        if notify is not None:
            notify(result)


def stretches(windows: Iterable[Window]) -> list[list[Window]]:
    """Group windows into runs of consecutive days of one report (each read as one stream)."""
    runs: list[list[Window]] = []
    for window in sorted(windows, key=lambda w: (str(w.report), w.start)):
        last = runs[-1][-1] if runs else None
        if (
            last is not None
            and last.report is window.report
            and (window.start - last.end).total_seconds() == 1
        ):
            runs[-1].append(window)
        else:
            runs.append([window])
    return runs
