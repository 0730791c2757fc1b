"""Bulk historical backfills: resumable, idempotent exports of both reports.

``plan`` the windows, run them with a :class:`Backfill` through one client, and
each window lands whole in a Hive-style partition while a SQLite :class:`Manifest`
remembers which are done, so a crashed or interrupted run resumes where it stopped.
"""

from voiceapi_async.backfill._manifest import Manifest, WindowEntry, WindowState
from voiceapi_async.backfill._plan import DEFAULT_SAFETY_LAG, lookback_start, plan
from voiceapi_async.backfill._rows import COLUMNS, call_row, export_rows, recording_row
from voiceapi_async.backfill._runner import FATAL_ERRORS, Backfill, Progress, Summary, WindowResult
from voiceapi_async.backfill._sinks import (
    FORMATS,
    CsvSink,
    JsonLinesSink,
    ParquetSink,
    Sink,
    make_sink,
    parquet_schema,
    partition_path,
)

__all__ = [
    "COLUMNS",
    "DEFAULT_SAFETY_LAG",
    "FATAL_ERRORS",
    "FORMATS",
    "Backfill",
    "CsvSink",
    "JsonLinesSink",
    "Manifest",
    "ParquetSink",
    "Progress",
    "Sink",
    "Summary",
    "WindowEntry",
    "WindowResult",
    "WindowState",
    "call_row",
    "export_rows",
    "lookback_start",
    "make_sink",
    "parquet_schema",
    "partition_path",
    "plan",
    "recording_row",
]
