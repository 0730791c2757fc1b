"""The backfill runner: windows through one client, each written whole, state in a manifest."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import IO, Protocol

import attrs

from voiceapi_async import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    Record,
    Report,
    TransportError,
    VoiceAPIError,
    VoiceClient,
    Window,
)
from voiceapi_async.backfill._errors import OutputError, os_error
from voiceapi_async.backfill._files import partition_path, write_atomically
from voiceapi_async.backfill._lock import OutputLock
from voiceapi_async.backfill._manifest import Manifest, WindowState
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


@attrs.define
class Summary:
    """The outcome of a run."""

    windows: int = 0
    """Windows in the plan."""
    written: int = 0
    """Windows written by this run."""
    skipped: int = 0
    """Windows already done (or failed earlier, without ``retry_failed``)."""
    failed: list[tuple[str, str]] = attrs.field(factory=list)
    """Windows that failed, now or earlier and not retried: (key, error)."""
    records: int = 0
    pages: int = 0
    retries: int = 0
    rate_limited: int = 0
    requests: int = 0
    elapsed: float = 0.0

    @property
    def records_per_second(self) -> float:
        """Records written a second."""
        return self.records / self.elapsed if self.elapsed > 0 else 0.0

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
        lock: OutputLock | None = None,
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
        self.lock = lock
        self._tmp_dir: Path | None = None

    async def run(self, windows: Sequence[Window]) -> Summary:
        """Run every window that needs it, holding the output directory's lock; return the summary.

        Raises:
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
        started = time.monotonic()
        before = self.client.stats
        self._tmp_dir = tmp_dir
        self.manifest.register(windows)
        summary = Summary(windows=len(windows))
        todo = []
        for window in windows:
            entry = self.manifest.entry(window.key)
            state = entry.state if entry else WindowState.PENDING
            if window.key not in self.force and state is WindowState.DONE:
                summary.skipped += 1
            elif (
                state is WindowState.FAILED
                and not self.retry_failed
                and window.key not in self.force
            ):
                summary.skipped += 1
                summary.failed.append(
                    (window.key, (entry and entry.last_error) or "failed earlier")
                )
            else:
                todo.append(window)
        self.progress.planned(len(windows), summary.skipped)
        slots = asyncio.Semaphore(self.concurrency)

        async def one(window: Window) -> None:
            async with slots:
                try:
                    result = await self.run_window(window)
                except FATAL_ERRORS:
                    raise
                except VoiceAPIError as exc:
                    summary.failed.append((window.key, str(exc)))
                    self.progress.window_failed(window, exc)
                    return
                summary.written += 1
                summary.records += result.records
                summary.pages += result.pages
                self.progress.window_done(window, result.records)

        try:
            async with asyncio.TaskGroup() as group:
                for window in todo:
                    group.create_task(one(window))
        except BaseExceptionGroup as group_error:
            # The first error (fatal, or not a VoiceAPIError) cancelled the other
            # windows; callers get it bare. `one` starts no task groups of its own.
            raise group_error.exceptions[0] from None
        finally:
            stats = self.client.stats
            summary.retries = stats.retries - before.retries
            summary.rate_limited = stats.rate_limited - before.rate_limited
            summary.requests = stats.requests - before.requests
            summary.elapsed = time.monotonic() - started
        summary.failed.sort()
        return summary

    async def run_window(self, window: Window) -> WindowResult:
        """Fetch one window and write it whole, replacing its partition (idempotent).

        Raises:
            VoiceAPIError: the window could not be read; the manifest says failed.
        """
        key = window.key
        self.manifest.start(key)
        try:
            stream = (
                self.client.calls(window.start, window.end)
                if window.report is Report.CALLS
                else self.client.recordings(window.start, window.end)
            )
            records: list[Record] = []
            pages = 0
            async with stream:
                async for page in stream.pages():
                    pages += 1
                    records.extend(page.records)
            records = sort_records(records)
            relative = partition_path(window, self.format.extension)

            def write(file: IO[bytes]) -> None:
                with self.format.open(file, window.report) as writer:
                    writer.write(records)

            try:
                checksum = await asyncio.to_thread(
                    write_atomically, self.out_dir, relative, write, tmp_dir=self._tmp_dir
                )
            except OSError as exc:
                raise os_error(exc, "write", self.out_dir / relative) from None
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
        self.manifest.done(
            key, records=len(records), pages=pages, output=str(relative), checksum=checksum
        )
        logger.info("window %s: %d records in %d pages -> %s", key, len(records), pages, relative)
        return WindowResult(window, len(records), pages, relative, checksum)
