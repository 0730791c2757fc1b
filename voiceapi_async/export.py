"""Export records: one column list and row mapping per report, and streaming writers.

Every output of the package goes through this module: backfill partitions, the
``voiceapi`` command's stdout and the FastAPI responses, so one window is the same
bytes wherever it was written::

    from voiceapi_async import export

    fmt = export.get_format("parquet", timezone="Asia/Kolkata")
    with open("calls.parquet", "wb") as file, fmt.open(file, Report.CALLS) as writer:
        async for batch in client.calls("2024-03-01", "2024-03-31").batches(1_000):
            writer.write(batch)

A writer takes batches of records and writes them to a binary file as they come;
``close()`` (or leaving the ``with`` block) finishes the file (the CSV header of an
empty output, the gzip trailer, the Parquet footer) and leaves the file itself open.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import zoneinfo
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from types import TracebackType
from typing import IO, Any, Protocol
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import attrs
import orjson

from voiceapi_async import Call, Record, Recording, Report

__all__ = [
    "CALL_COLUMNS",
    "COLUMNS",
    "EXPORT_SCHEMA_VERSION",
    "FORMATS",
    "JSON_COLUMNS",
    "RECORDING_COLUMNS",
    "AudioFile",
    "Csv",
    "ExportFormat",
    "JsonLines",
    "Parquet",
    "RecordWriter",
    "call_row",
    "get_format",
    "is_presigned",
    "json_row",
    "parquet_schema",
    "recording_row",
    "row",
    "sort_records",
    "to_dict",
    "unsigned_url",
]

CALL_COLUMNS = (
    "id",
    "call_from",
    "call_to",
    "service",
    "bridge",
    "status",
    "duration_seconds",
    "billing_seconds",
    "pulsing",
    "charges",
    "start_at",
    "end_at",
    "hangup_by",
    "dtmf",
    "location",
    "region",
    "provider",
    "notes",
    "name",
    "audio",
    "extra",
)
"""The columns of a calls export, in order."""
RECORDING_COLUMNS = (
    "id",
    "call_from",
    "call_to",
    "audio",
    "duration_seconds",
    "agent",
    "created_at",
    "extra",
    "audio_file",
    "audio_sha256",
)
"""The columns of a recordings export, in order.

``audio_file`` and ``audio_sha256`` are the downloaded audio file (relative to the
backfill's output directory) and its SHA-256; None when there is none (no audio,
or the audio was not downloaded).
"""
COLUMNS: Mapping[Report, tuple[str, ...]] = {
    Report.CALLS: CALL_COLUMNS,
    Report.RECORDINGS: RECORDING_COLUMNS,
}
"""The export columns of each report, in order."""
JSON_COLUMNS = frozenset({"extra", "agent"})
"""Columns holding raw JSON: nested in JSON Lines, JSON text in CSV and Parquet."""
FORMATS = ("jsonl", "csv", "parquet")
"""The format names :func:`get_format` knows."""
EXPORT_SCHEMA_VERSION = 2
"""The version of the export's columns and their encoding, in every format.

Bumped whenever a column is added, removed, renamed or reordered, or a value is
encoded differently (types, timestamp or number text, JSON columns). A backfill
dataset pins the version it was written with, so files of two versions never mix.
Version 2 added the recordings' ``audio_file`` and ``audio_sha256`` columns.
"""

# -- rows -------------------------------------------------------------------------------


def call_row(call: Call) -> dict[str, Any]:
    """Return a call as an export row: native types, aware timestamps, whole seconds."""
    return {
        "id": call.id,
        "call_from": call.call_from,
        "call_to": call.call_to,
        "service": call.service,
        "bridge": call.bridge,
        "status": str(call.status),
        "duration_seconds": int(call.duration.total_seconds()),
        "billing_seconds": int(call.billing.total_seconds()),
        "pulsing": call.pulsing,
        "charges": call.charges,
        "start_at": call.start_at,
        "end_at": call.end_at,
        "hangup_by": None if call.hangup_by is None else str(call.hangup_by),
        "dtmf": call.dtmf,
        "location": call.location,
        "region": call.region,
        "provider": call.provider,
        "notes": call.notes,
        "name": call.name,
        "audio": unsigned_url(call.audio),
        "extra": _unsigned_json(dict(call.extra)),
    }


@attrs.frozen
class AudioFile:
    """A recording's downloaded audio, as its export row names it."""

    path: str
    """The file, relative to the output directory (``audio/date=.../<id>.mp3``)."""
    sha256: str
    """The file's SHA-256, in hex."""


def recording_row(recording: Recording, audio: AudioFile | None = None) -> dict[str, Any]:
    """Return a recording as an export row (same conventions as :func:`call_row`).

    ``audio`` fills ``audio_file`` and ``audio_sha256`` (None without it).
    """
    return {
        "id": recording.id,
        "call_from": recording.call_from,
        "call_to": recording.call_to,
        "audio": unsigned_url(recording.audio),
        "duration_seconds": int(recording.duration.total_seconds()),
        "agent": _unsigned_json(recording.agent),
        "created_at": recording.created_at,
        "extra": _unsigned_json(dict(recording.extra)),
        "audio_file": None if audio is None else audio.path,
        "audio_sha256": None if audio is None else audio.sha256,
    }


def unsigned_url(url: str | None) -> str | None:
    """Return ``url`` without its query string and fragment: the stored object's address.

    A presigned storage URL carries its signature, credential and expiry in the query;
    without them it is a secret-free address that stays the same from fetch to fetch
    (it no longer downloads anything by itself: use the record's ``audio`` within the
    hour for that).
    """
    if url is None:
        return None
    scheme, netloc, path, _, _ = urlsplit(url)
    return urlunsplit((scheme, netloc, path, "", ""))


_SIGNATURES = frozenset({"x-amz-signature", "x-goog-signature", "signature", "sig"})


def is_presigned(url: str) -> bool:
    """Whether ``url`` is an http(s) URL with a storage signature in its query.

    S3 (SigV4 and v2), Google Cloud Storage, Azure SAS and CloudFront all sign there.
    """
    scheme, _, _, query, _ = urlsplit(url)
    return scheme in ("http", "https") and any(
        name.lower() in _SIGNATURES for name, _ in parse_qsl(query)
    )


def _unsigned_json(value: Any) -> Any:
    """Return JSON ``value`` with every presigned URL in it reduced to :func:`unsigned_url`."""
    if isinstance(value, str):
        return unsigned_url(value) if is_presigned(value) else value
    if isinstance(value, dict):
        return {key: _unsigned_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unsigned_json(item) for item in value]
    return value


def row(record: Record) -> dict[str, Any]:
    """Return a call or a recording as its export row, keyed by :data:`COLUMNS`."""
    if isinstance(record, Call):
        return call_row(record)
    if isinstance(record, Recording):
        return recording_row(record)
    raise TypeError(f"expected a Call or a Recording, not {type(record).__name__}")


def json_row(record: Record) -> dict[str, Any]:
    """Return a record's export row ready for JSON: ISO 8601 timestamps, charges as text."""
    return _jsonable(row(record))


def to_dict(record: Record) -> dict[str, Any]:
    """Return a call or a recording as a JSON-ready dict (also ``voiceapi_async.to_dict``).

    The dict is the record's JSON Lines export row, so it matches what the command
    and the FastAPI helpers write: keys in :data:`COLUMNS` order, timestamps as ISO
    8601 text with the account's UTC offset, durations as whole seconds
    (``duration_seconds``, ``billing_seconds``), charges as decimal text, the raw
    ``extra`` and ``agent`` JSON as they came, and ``audio`` as the stored object's
    address without its signature (download with the record's own ``audio``, or
    ``VoiceClient.download_audio``). ``json.dumps`` and ``orjson.dumps`` take it as it is.

    Raises:
        TypeError: ``record`` is neither a ``Call`` nor a ``Recording``.
    """
    return json_row(record)


def sort_records(records: Iterable[Record]) -> list[Record]:
    """Return records in export order: by the report's filtered timestamp, then by id."""
    return sorted(records, key=_export_order)


def _export_order(record: Record) -> tuple[dt.datetime, str]:
    moment = record.end_at if isinstance(record, Call) else record.created_at
    return (moment if moment is not None else _EPOCH, record.id)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _jsonable(row: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _plain(value) for key, value in row.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _json_text(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


# -- writers ----------------------------------------------------------------------------

_ROW_OF: Mapping[Report, tuple[type[Call] | type[Recording], Callable[[Any], dict[str, Any]]]] = {
    Report.CALLS: (Call, call_row),
    Report.RECORDINGS: (Recording, recording_row),
}


class RecordWriter(Protocol):
    """Writes batches of one report's records to a binary file."""

    def write(
        self, records: Iterable[Record], *, audio: Mapping[str, AudioFile] | None = None
    ) -> None:
        """Write a batch of records (in the order given); ``audio`` fills recordings' audio."""

    def close(self) -> None:
        """Finish the output; the file itself stays open. Idempotent."""

    def __enter__(self) -> RecordWriter: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


class ExportFormat(Protocol):
    """A file format with its settings: opens a :class:`RecordWriter` per file."""

    @property
    def name(self) -> str:
        """The format's name, one of :data:`FORMATS`."""

    @property
    def extension(self) -> str:
        """The file name extension, without the dot (``jsonl.gz``, ``csv``, ``parquet``)."""

    def open(self, file: IO[bytes], report: Report) -> RecordWriter:
        """Return a writer of ``report``'s records to ``file``."""


class _Writer:
    """What every writer shares: the report's row mapping, type checks, ``with``."""

    def __init__(self, file: IO[bytes], report: Report) -> None:
        self._file = file
        self._report = report
        self._type, self._row = _ROW_OF[report]
        self._closed = False

    def __enter__(self) -> _Writer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def write(
        self, records: Iterable[Record], *, audio: Mapping[str, AudioFile] | None = None
    ) -> None:
        """Write a batch of records (in the order given); ``audio`` fills recordings' audio."""
        if self._closed:
            raise ValueError(f"this {self._report} writer is closed")
        rows = [self._row_of(record) for record in records]
        if audio:
            for one in rows:
                if (file := audio.get(one["id"])) is not None and "audio_file" in one:
                    one["audio_file"], one["audio_sha256"] = file.path, file.sha256
        self._write_rows(rows)

    def close(self) -> None:
        """Finish the output; the file itself stays open. Idempotent."""
        if not self._closed:
            self._closed = True
            self._finish()

    def _row_of(self, record: Record) -> dict[str, Any]:
        if type(record) is not self._type:
            raise TypeError(
                f"a {self._report} export takes {self._type.__name__} records, "
                f"not {type(record).__name__}"
            )
        return self._row(record)

    def _write_rows(self, rows: Sequence[Mapping[str, Any]]) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        raise NotImplementedError


class _JsonLinesWriter(_Writer):
    def __init__(self, file: IO[bytes], report: Report, *, compress: bool) -> None:
        super().__init__(file, report)
        self._gzip = (
            gzip.GzipFile(filename="", mode="wb", fileobj=file, mtime=0) if compress else None
        )

    def _write_rows(self, rows: Sequence[Mapping[str, Any]]) -> None:
        data = b"".join(orjson.dumps(_jsonable(row)) + b"\n" for row in rows)
        (self._gzip or self._file).write(data)

    def _finish(self) -> None:
        if self._gzip is not None:
            self._gzip.close()  # writes the gzip trailer; the underlying file stays open


class _CsvWriter(_Writer):
    def __init__(self, file: IO[bytes], report: Report) -> None:
        super().__init__(file, report)
        self._columns = COLUMNS[report]
        self._header_written = False

    def _write_rows(self, rows: Sequence[Mapping[str, Any]]) -> None:
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        if not self._header_written:
            writer.writerow(self._columns)
            self._header_written = True
        for row in rows:
            writer.writerow([_csv_cell(column, row[column]) for column in self._columns])
        self._file.write(text.getvalue().encode())

    def _finish(self) -> None:
        if not self._header_written:
            self._write_rows([])


def _csv_cell(column: str, value: Any) -> Any:
    if column in JSON_COLUMNS:
        return _json_text(value)
    return "" if value is None else _plain(value)


class _ParquetWriter(_Writer):
    def __init__(self, file: IO[bytes], report: Report, *, timezone: str, compression: str):
        import pyarrow.parquet as pq

        super().__init__(file, report)
        self._schema = parquet_schema(report, timezone)
        self._names: list[str] = list(self._schema.names)
        self._parquet = pq.ParquetWriter(file, self._schema, compression=compression)

    def _write_rows(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        import pyarrow as pa

        columns: dict[str, list[Any]] = {name: [] for name in self._names}
        for row in rows:
            for name in self._names:
                value = row[name]
                columns[name].append(_json_text(value) if name in JSON_COLUMNS else value)
        self._parquet.write_table(pa.table(columns, schema=self._schema))

    def _finish(self) -> None:
        self._parquet.close()


@attrs.frozen
class JsonLines:
    """JSON Lines: one object a line; ISO 8601 timestamps with offset, charges as text.

    Attributes:
        compress: gzip the output (with a fixed header, so the bytes are reproducible).
    """

    compress: bool = False

    @property
    def name(self) -> str:
        """``jsonl``."""
        return "jsonl"

    @property
    def extension(self) -> str:
        """``jsonl``, or ``jsonl.gz`` when compressed."""
        return "jsonl.gz" if self.compress else "jsonl"

    def open(self, file: IO[bytes], report: Report) -> RecordWriter:
        """Return a JSON Lines writer of ``report``'s records to ``file``."""
        return _JsonLinesWriter(file, report, compress=self.compress)


@attrs.frozen
class Csv:
    """UTF-8 CSV with one header row (also for no records); JSON columns as JSON text."""

    @property
    def name(self) -> str:
        """``csv``."""
        return "csv"

    @property
    def extension(self) -> str:
        """``csv``."""
        return "csv"

    def open(self, file: IO[bytes], report: Report) -> RecordWriter:
        """Return a CSV writer of ``report``'s records to ``file``."""
        return _CsvWriter(file, report)


@attrs.frozen
class Parquet:
    """Parquet with a typed schema (see :func:`parquet_schema`); needs the ``parquet`` extra.

    Attributes:
        timezone: the zone of the timestamp columns: the account's time zone.
        compression: the Parquet codec.
    """

    timezone: str
    compression: str = "zstd"

    def __attrs_post_init__(self) -> None:
        try:
            import pyarrow  # noqa: F401  - checked here so the error names the extra
        except ImportError:
            raise RuntimeError(
                "Parquet needs pyarrow: pip install 'voiceapi-async[parquet]'"
            ) from None
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (ValueError, zoneinfo.ZoneInfoNotFoundError):
            raise ValueError(
                f"unknown time zone {self.timezone!r} for the Parquet timestamps: "
                "use an IANA name such as 'Asia/Kolkata' or 'UTC'"
            ) from None

    @property
    def name(self) -> str:
        """``parquet``."""
        return "parquet"

    @property
    def extension(self) -> str:
        """``parquet``."""
        return "parquet"

    def open(self, file: IO[bytes], report: Report) -> RecordWriter:
        """Return a Parquet writer of ``report``'s records to ``file``."""
        return _ParquetWriter(file, report, timezone=self.timezone, compression=self.compression)


def get_format(name: str, *, compress: bool = False, timezone: str | None = None) -> ExportFormat:
    """Return the format called ``name`` (one of :data:`FORMATS`) with its settings.

    Args:
        name: ``jsonl``, ``csv`` or ``parquet``.
        compress: gzip the output (``jsonl`` only).
        timezone: the account's time zone: required for ``parquet`` (the zone of its
            timestamp columns), ignored by the text formats, whose timestamps carry
            their offset.

    Raises:
        ValueError: an unknown name or time zone, ``compress`` for a format other
            than ``jsonl``, or ``parquet`` without a time zone.
    """
    if name not in FORMATS:
        raise ValueError(f"unknown format {name!r}: choose one of {', '.join(FORMATS)}")
    if compress and name != "jsonl":
        raise ValueError(f"gzip compression applies to jsonl only, not {name}")
    if name == "parquet":
        if timezone is None:
            raise ValueError("parquet needs the account's time zone for its timestamp columns")
        return Parquet(timezone)
    if name == "csv":
        return Csv()
    return JsonLines(compress=compress)


def parquet_schema(report: Report, timezone: str) -> Any:
    """Return the ``pyarrow`` schema of a report's export.

    Timestamps are whole seconds in ``timezone`` (Parquet stores them as
    milliseconds, so readers see ``timestamp[ms]``), charges ``decimal128(14, 4)``,
    durations whole seconds as ``int64``; everything else (JSON columns included)
    is text.
    """
    import pyarrow as pa

    stamp = pa.timestamp("s", tz=timezone)
    types: dict[str, Any] = {
        "duration_seconds": pa.int64(),
        "billing_seconds": pa.int64(),
        "pulsing": pa.int32(),
        "charges": pa.decimal128(14, 4),
        "start_at": stamp,
        "end_at": stamp,
        "created_at": stamp,
    }
    return pa.schema([(name, types.get(name, pa.string())) for name in COLUMNS[report]])
