"""VoiceClient: the asyncio client for the call-log and recording reports."""

from __future__ import annotations

import operator
import warnings
from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Unpack

import attrs

from voiceapi_async._audio import (
    AudioDownloader,
    AudioResult,
    Existing,
    NameFor,
    audio_filename,
)
from voiceapi_async._config import ClientConfig, ClientSettings
from voiceapi_async._convert import make_converter
from voiceapi_async._download import StorageClient
from voiceapi_async._errors import AudioExpiredError, OutOfWindowError
from voiceapi_async._fanout import run_windows
from voiceapi_async._models import Call, Page, Recording, RecordT, Report, Shape, Window
from voiceapi_async._paging import RowsPage, WindowReader
from voiceapi_async._protocol import PageData, build_request
from voiceapi_async._sizing import Sizing
from voiceapi_async._stream import RecordStream
from voiceapi_async._transport import Transport
from voiceapi_async._windows import DateLike, first_outside, plan_range, wall_date

if TYPE_CHECKING:
    import aiohttp


@attrs.frozen
class ClientStats:
    """A snapshot of a client's counters (``client.stats`` takes a new one each time)."""

    requests: int = 0
    """HTTP requests sent (attempts, retries included)."""
    retries: int = 0
    """Attempts that were retries."""
    rate_limited: int = 0
    """429 answers received."""
    pages: int = 0
    """Pages delivered to streams."""
    records: int = 0
    """Records delivered to streams (after de-duplication)."""
    bytes: int = 0
    """Response body bytes received."""
    per_page: int | None = None
    """The page size in use: the one the server last applied (None: no paged answer yet)."""

    @property
    def requests_per_1000_records(self) -> float | None:
        """Requests sent for every 1,000 records delivered (None before any record)."""
        return 1000 * self.requests / self.records if self.records else None

    paced_seconds: float = 0.0
    """Seconds requests waited for the token's quota (the pacer and the ``rate_limit``
    cap), summed over requests (concurrent waits add up); 429 pauses not included."""


PAGE_BUDGET_PER_SLOT = 4
"""Pages per request slot a stream may hold between fetch and hand-off, at 100 a page.

The stream's gate has this many tokens per slot, and the window being delivered
(which passes the gate without tokens) may run as far ahead of its consumer: room
for one slow page while every other slot keeps fetching. Larger pages get fewer
tokens, down to 2 a slot, so that the budget stays near the same number of records.
"""


def page_budget(max_in_flight: int, page_size: int) -> int:
    """The pages a stream may hold between fetch and hand-off, for pages of ``page_size``."""
    records = PAGE_BUDGET_PER_SLOT * max_in_flight * 100
    return min(
        PAGE_BUDGET_PER_SLOT * max_in_flight, max(2 * max_in_flight, -(-records // page_size))
    )


class VoiceClient:
    """An asyncio client for the Voice API's call-log and recording reports.

    One client holds one ``aiohttp.ClientSession`` (created inside the running
    loop), one in-flight limit and one rate pacer shared by all its streams::

        async with VoiceClient(base_url=..., token=..., timezone="Asia/Kolkata") as client:
            async for call in client.calls("2024-01-01", "2024-01-31"):
                ...

    Args:
        config: a :class:`ClientConfig`; or pass its fields as keyword arguments.
        session: an aiohttp session to use; the client never closes it.
        trace_configs: aiohttp trace configs, for your own tracing (ignored with ``session``).
        **settings: :class:`ClientConfig` fields, used when ``config`` is not given
            (or applied on top of it); typed by :class:`ClientSettings`, so a misspelt
            setting fails type checking.
    """

    def __init__(
        self,
        config: ClientConfig | None = None,
        *,
        session: aiohttp.ClientSession | None = None,
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
        **settings: Unpack[ClientSettings],
    ) -> None:
        if config is None:
            config = ClientConfig(**settings)
        elif settings:
            config = ClientConfig(**{**_fields(config), **settings})
        self.config = config
        self._converter = make_converter(config.timezone)
        self._transport = Transport(config, session=session, trace_configs=trace_configs)
        self._storage = StorageClient(config)
        self._audio = AudioDownloader(
            self._storage,
            self._renew_audio,
            renewals=config.audio_renewals,
            max_in_flight=config.audio_max_in_flight,
        )
        self._closed = False
        self._pages = 0
        self._records = 0
        # The page size asked for: pinned, or learned from the server's answers.
        self._ask = config.per_page if config.per_page is not None else config.max_per_page
        self._applied: int | None = None

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<VoiceClient {self.config.base_url} tz={self.config.timezone} {state}>"

    @property
    def stats(self) -> ClientStats:
        """The counts of this client's requests, retries, 429s, pages, records and bytes."""
        counts = attrs.asdict(self._transport.counts)
        return ClientStats(
            pages=self._pages, records=self._records, per_page=self._applied, **counts
        )

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    async def __aenter__(self) -> VoiceClient:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client's own session. Idempotent; a closed client refuses new work."""
        self._closed = True
        await self._transport.aclose()
        await self._storage.aclose()

    def __del__(self) -> None:
        transport = getattr(self, "_transport", None)
        storage = getattr(self, "_storage", None)
        open_session = (transport is not None and transport.has_open_session) or (
            storage is not None and storage.has_open_session
        )
        if open_session and not self._closed:
            warnings.warn(
                f"{self!r} was never closed: use 'async with VoiceClient(...)' or "
                "'await client.aclose()'",
                ResourceWarning,
                stacklevel=2,
            )

    def calls(
        self,
        start: DateLike,
        end: DateLike,
        *,
        ordered: bool = True,
        max_items: int | None = None,
        bulk: bool | None = None,
    ) -> RecordStream[Call]:
        """Stream the calls whose ``end_at`` falls in ``start``..``end`` (both inclusive).

        Dates and ISO date strings cover whole days; aware datetimes are exact to the
        second. Windows are per day in the account's time zone, planned one at a time
        as the stream reads them.

        Args:
            start: the first day, or an aware datetime.
            end: the last day (inclusive), or an aware datetime.
            ordered: chronological by window, then page (True); or as pages complete.
            max_items: stop after this many records.
            bulk: pace this stream's requests as bulk work, leaving the token's
                reserve to interactive clients (None: the client's ``bulk`` setting).

        Raises:
            TypeError: a naive datetime, or a value of the wrong type.
            ValueError: ``end`` is before ``start``, a day lies outside 0001-01-02 to
                9999-12-30, or the range covers more than ``max_days`` days.
            RuntimeError: the client is closed.
        """
        return self._stream(
            Report.CALLS, Call, start, end, ordered=ordered, max_items=max_items, bulk=bulk
        )

    def recordings(
        self,
        start: DateLike,
        end: DateLike,
        *,
        ordered: bool = True,
        max_items: int | None = None,
        bulk: bool | None = None,
    ) -> RecordStream[Recording]:
        """Stream the recordings whose ``created_at`` falls in ``start``..``end``.

        Same arguments and errors as :meth:`calls`.
        """
        return self._stream(
            Report.RECORDINGS,
            Recording,
            start,
            end,
            ordered=ordered,
            max_items=max_items,
            bulk=bulk,
        )

    async def download_audio(
        self, recording: Recording, path: str | Path, *, temp_dir: str | Path | None = None
    ) -> AudioResult:
        """Download one recording's audio to ``path``.

        The file is streamed to a temporary file beside ``path``, flushed to disk
        and renamed into place: ``path`` is either absent or complete. A file
        already at ``path`` is kept (status ``already_present``). An expired link
        is renewed by fetching the recording again, at most ``audio_renewals``
        times. Storage gets no token and none of the API's headers.

        Args:
            recording: a recording from :meth:`recordings`.
            path: where the file goes (its folder is created as needed).
            temp_dir: where the temporary file goes, on the same file system as
                ``path``; by default a hidden ``.<name>.<random>.part`` beside it.

        Returns:
            The :class:`AudioResult`; a failure is reported in it (status
            ``failed``, ``error`` set), not raised.

        Raises:
            TypeError: ``recording`` is not a :class:`Recording`.
            RuntimeError: the client is closed.
        """
        self._check_open()
        if not isinstance(recording, Recording):
            raise TypeError(
                f"download_audio takes a Recording (from client.recordings()), "
                f"not {type(recording).__name__}"
            )
        return await self._audio.one(
            recording, Path(path), temp_dir=None if temp_dir is None else Path(temp_dir)
        )

    def download_audios(
        self,
        recordings: Iterable[Recording] | AsyncIterable[Recording],
        directory: str | Path,
        *,
        name: NameFor = audio_filename,
        existing: Existing | None = None,
        temp_dir: str | Path | None = None,
    ) -> AsyncGenerator[AudioResult, None]:
        """Download many recordings' audio into ``directory``, concurrently.

        Yields one :class:`AudioResult` per recording as each completes (not in
        input order). ``recordings`` may be a list or any async iterable, such as
        ``client.recordings(...)``; it is read lazily: at most
        ``audio_max_in_flight`` downloads run at once and only a couple more
        recordings are taken ahead. One file's failure is reported in its result
        and does not stop the others. Closing the iterator (``aclose()``, or
        ``async with contextlib.aclosing(...)`` around the loop) cancels every
        download and removes their temporary files before it returns.

        Args:
            recordings: the recordings whose audio to fetch.
            directory: where the files go (created as needed).
            name: a recording's file relative to ``directory``; by default
                ``<id><extension>`` (:func:`audio_filename`). A name leaving the
                directory fails that recording.
            existing: called with the recording and the path when a file is already
                there; False downloads it again. By default an existing file is kept
                (files only ever appear complete).
            temp_dir: where temporary files go, on the same file system as
                ``directory``; by default hidden ``.<name>.<random>.part`` files
                beside each destination (a hard kill may leave those behind).

        Raises:
            VoiceAPIError: reading ``recordings`` failed (an API error of the
                stream); the downloads in flight are cancelled.
            TypeError: an item of ``recordings`` is not a :class:`Recording`.
            RuntimeError: the client is closed.
        """
        self._check_open()
        return self._audio.many(
            recordings,
            Path(directory),
            name=name,
            existing=existing,
            temp_dir=None if temp_dir is None else Path(temp_dir),
        )

    async def _renew_audio(self, recording: Recording) -> str | None:
        """Fetch a recording again, for its fresh audio link: its second, else its day."""
        created = recording.created_at
        for start, end in ((created, created), (created.date(), created.date())):
            async with self.recordings(start, end) as stream:
                async for fresh in stream:
                    if fresh.id == recording.id:
                        return fresh.audio
        raise AudioExpiredError(
            f"the audio link expired and the recording is no longer listed on "
            f"{created.date().isoformat()}, so it cannot be renewed",
            recording_id=recording.id,
        )

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this VoiceClient is closed; create a new one")

    def _stream(
        self,
        report: Report,
        record_type: type[RecordT],
        start: DateLike,
        end: DateLike,
        *,
        ordered: bool,
        max_items: int | None,
        bulk: bool | None,
    ) -> RecordStream[RecordT]:
        self._check_open()
        config = self.config
        paced_as_bulk = config.bulk if bulk is None else bulk
        windows = plan_range(
            report,
            start,
            end,
            config.timezone,
            max_days=config.max_days,
            setting="ClientConfig.max_days, VOICEAPI_MAX_DAYS",
        )
        sizing = Sizing(self._applied or self._ask, split_pages=config.split_pages)

        def budget() -> int:
            return page_budget(config.max_in_flight, sizing.page_size)

        field = _FILTERED_BY[report]
        zone = self._converter.timezone

        async def fetch(window: Window, page: int) -> PageData:
            return await self._fetch(window, page, bulk=paced_as_bulk)

        reader = WindowReader(
            fetch=fetch,
            lookahead=budget,
            split_pages=config.split_pages,
            rereads=config.rereads,
            sizing=sizing,
            day_of=lambda row: wall_date(row.get(field), zone),
        )

        async def produce(emit: Any) -> None:
            await run_windows(
                sizing.plan(windows),
                reader.read,
                emit,
                max_windows=config.max_windows,
                ordered=ordered,
                page_budget=budget,
            )

        structure_rows = self._converter.structure_rows
        secrets = (config.token,)

        timestamp_of = operator.attrgetter(field)

        def check(window: Window, records: list[RecordT]) -> None:
            times = list(map(timestamp_of, records))
            outside = first_outside(window, times)
            if outside is not None:
                raise OutOfWindowError(
                    window=window.key,
                    record_id=records[outside].id,
                    field=field,
                    timestamp=str(times[outside]),
                )

        def make_page(read: RowsPage) -> Page[RecordT]:
            data, window = read.data, read.window
            path = data.rows_path
            records = structure_rows(read.rows(), record_type, path=path, secrets=secrets)
            check(window, records)
            if read.keep is not None and (repeated := read.repeated_rows()):
                check(window, structure_rows(repeated, record_type, path=path, secrets=secrets))
            return Page(records=records, window=window, shape=data.shape, numbers=data.numbers)

        return RecordStream(
            produce,
            report=report,
            make_page=make_page,
            description=f"{report} {windows.first.date()}..{windows.last.date()}",
            max_items=max_items,
            deadline=config.deadline,
            on_page=self._count,
        )

    async def _fetch(self, window: Window, page: int, *, bulk: bool) -> PageData:
        self._check_open()
        config = self.config
        spec = build_request(
            config.base_url,
            window,
            page,
            token=config.token,
            auth=config.auth,
            per_page=self._ask,
            user_agent=config.user_agent,
        )
        data = await self._transport.get_page(spec, bulk=bulk)
        if data.shape is not Shape.BARE_LIST:
            applied = data.numbers.per_page
            self._applied = applied
            if config.per_page is None and applied < self._ask:
                self._ask = applied  # the server's largest: ask for it from now on
        return data

    def _count(self, page: Page[Any]) -> None:
        self._pages += 1
        self._records += len(page.records)


_FILTERED_BY = {Report.CALLS: "end_at", Report.RECORDINGS: "created_at"}
"""The timestamp each report's date range filters on."""


def _fields(config: ClientConfig) -> dict[str, Any]:
    return attrs.asdict(config, recurse=False)
