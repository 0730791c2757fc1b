"""Sinks: write one window's rows to a file, byte-for-byte reproducibly.

A window is written to a temporary file under ``OUT/_tmp`` and renamed into its
Hive-style partition (``OUT/calls/date=2024-03-05/part-0.parquet``), so a reader
never sees half a window and a rerun replaces the partition whole.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import orjson

from voiceapi_async._models import Report, Window
from voiceapi_async.backfill._rows import COLUMNS, JSON_COLUMNS, json_text, jsonable

TMP_DIR = "_tmp"
"""Temporary files live here, inside the output directory (same file system)."""
FORMATS = ("jsonl", "csv", "parquet")
"""The formats a backfill can write."""


class Sink(Protocol):
    """Encodes a window's rows as the bytes of one file."""

    extension: str

    def encode(self, report: Report, rows: Sequence[Mapping[str, Any]], timezone: str) -> bytes:
        """Return the file content for ``rows``."""
        ...


class JsonLinesSink:
    """JSON Lines: one object a line; timestamps ISO 8601 with offset, charges as text."""

    def __init__(self, *, compress: bool = False) -> None:
        self.compress = compress
        self.extension = "jsonl.gz" if compress else "jsonl"

    def encode(self, report: Report, rows: Sequence[Mapping[str, Any]], timezone: str) -> bytes:
        """Return the rows as JSON Lines (gzip with a fixed header when compressing)."""
        data = b"".join(orjson.dumps(jsonable(row)) + b"\n" for row in rows)
        if not self.compress:
            return data
        buffer = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as packed:
            packed.write(data)
        return buffer.getvalue()


class CsvSink:
    """CSV with a header row; raw JSON columns as JSON text, nulls as empty cells."""

    extension = "csv"

    def encode(self, report: Report, rows: Sequence[Mapping[str, Any]], timezone: str) -> bytes:
        """Return the rows as UTF-8 CSV."""
        columns = COLUMNS[report]
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            plain = jsonable(row)
            writer.writerow(
                [
                    json_text(plain[c])
                    if c in JSON_COLUMNS
                    else ("" if plain[c] is None else plain[c])
                    for c in columns
                ]
            )
        return text.getvalue().encode()


class ParquetSink:
    """Parquet with a typed schema: zone-aware timestamps, decimal charges, seconds as ints."""

    extension = "parquet"

    def __init__(self) -> None:
        try:
            import pyarrow  # noqa: F401  - checked here so the error names the extra
        except ImportError:
            raise RuntimeError(
                "Parquet needs pyarrow: pip install 'voiceapi-async[parquet]'"
            ) from None

    def encode(self, report: Report, rows: Sequence[Mapping[str, Any]], timezone: str) -> bytes:
        """Return the rows as a Parquet file."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = parquet_schema(report, timezone)
        columns: dict[str, list[Any]] = {name: [] for name in schema.names}
        for row in rows:
            for name in schema.names:
                value = row[name]
                columns[name].append(json_text(value) if name in JSON_COLUMNS else value)
        table = pa.table(columns, schema=schema)
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        return buffer.getvalue()


def parquet_schema(report: Report, timezone: str) -> Any:
    """Return the pyarrow schema of a report's export."""
    import pyarrow as pa

    stamp = pa.timestamp("s", tz=timezone)
    text = pa.string()
    types: dict[str, Any] = {
        "duration_seconds": pa.int64(),
        "billing_seconds": pa.int64(),
        "pulsing": pa.int32(),
        "charges": pa.decimal128(14, 4),
        "start_at": stamp,
        "end_at": stamp,
        "created_at": stamp,
    }
    return pa.schema([(name, types.get(name, text)) for name in COLUMNS[report]])


def make_sink(name: str, *, compress: bool = False) -> Sink:
    """Return the sink for a format name (``jsonl``, ``csv`` or ``parquet``).

    Raises:
        ValueError: an unknown format, or ``compress`` for a format that cannot.
    """
    if name == "jsonl":
        return JsonLinesSink(compress=compress)
    if compress:
        raise ValueError(f"--gzip applies to jsonl only, not {name}")
    if name == "csv":
        return CsvSink()
    if name == "parquet":
        return ParquetSink()
    raise ValueError(f"unknown format {name!r}: choose one of {', '.join(FORMATS)}")


def partition_path(window: Window, extension: str) -> Path:
    """Return a window's file, relative to the output directory."""
    return (
        Path(str(window.report)) / f"date={window.start.date().isoformat()}" / f"part-0.{extension}"
    )


def write_atomically(out_dir: Path, relative: Path, content: bytes) -> str:
    """Write ``content`` to ``out_dir/relative`` through a temporary file and a rename.

    Returns the SHA-256 of the content.
    """
    target = out_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = out_dir / TMP_DIR
    tmp_dir.mkdir(parents=True, exist_ok=True)
    temporary = tmp_dir / f"{uuid.uuid4().hex}.{relative.name}"
    with open(temporary, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, target)
    _fsync_directory(target.parent)
    return hashlib.sha256(content).hexdigest()


def clear_temporary(out_dir: Path) -> None:
    """Remove temporary files a killed run left behind."""
    tmp_dir = out_dir / TMP_DIR
    if tmp_dir.is_dir():
        for leftover in tmp_dir.iterdir():
            leftover.unlink(missing_ok=True)


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
