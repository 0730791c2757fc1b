"""Copy calls and recordings of a date range into a SQLite database, 500 at a time.

Against your account, configure the client through the environment::

    export VOICEAPI_BASE_URL=https://portal.example.com/api/v2/
    export VOICEAPI_TOKEN=...                  # the account's API token
    export VOICEAPI_TIMEZONE=Asia/Kolkata      # the account's time zone
    python examples/batches_to_sqlite.py --db voice.sqlite --from 2024-03-01 --to 2024-03-31

Without an account, ``--demo`` starts the bundled simulator in this process and
points the client at it::

    python examples/batches_to_sqlite.py --demo --db demo.sqlite --from 2024-03-01 --to 2024-03-02

``--report calls`` or ``--report recordings`` copies one report only (default: both).

The tables (``calls``, ``recordings``) have typed columns: the record id as primary
key, timestamps as ISO 8601 text with the account's UTC offset (they sort and
compare as text within one offset), durations in whole seconds, charges as
``TEXT`` holding the exact decimal (read it back with ``decimal.Decimal``), and
every key the model does not know in an ``extra`` JSON column. Writes are
``INSERT OR REPLACE``, one transaction per batch, so running the script again over
the same range (or an overlapping one) leaves one row per record: it is idempotent.

Recording ``audio`` values are usually presigned URLs valid for about an hour:
download the audio soon after copying, or copy the range again for fresh links.

Exit status: 0 on success, 1 when the API fails, 2 for bad arguments or settings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import sqlite3
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pendulum
from demo_client import open_client, parse_range_args, range_parser

from voiceapi_async import (
    Call,
    ClientConfig,
    Recording,
    RecordStream,
    Report,
    VoiceAPIError,
    VoiceClient,
)

BATCH_SIZE = 500
"""Records per transaction."""


SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id         TEXT PRIMARY KEY,
    call_from  TEXT NOT NULL,
    call_to    TEXT NOT NULL,
    service    TEXT,
    bridge     TEXT,
    status     TEXT NOT NULL,
    start_at   TEXT,              -- ISO 8601 with offset, e.g. 2024-03-01T09:15:02+05:30
    end_at     TEXT,
    duration_s INTEGER NOT NULL,  -- whole seconds
    billing_s  INTEGER NOT NULL,
    pulsing    INTEGER NOT NULL,
    charges    TEXT NOT NULL,     -- exact decimal, e.g. 0.0450
    hangup_by  TEXT,
    dtmf       TEXT,
    location   TEXT,
    region     TEXT,
    provider   TEXT,
    notes      TEXT,
    name       TEXT,
    audio      TEXT,
    extra      TEXT NOT NULL      -- JSON object of the keys the model does not know
);
CREATE TABLE IF NOT EXISTS recordings (
    id         TEXT PRIMARY KEY,
    call_from  TEXT NOT NULL,
    call_to    TEXT NOT NULL,
    created_at TEXT NOT NULL,     -- ISO 8601 with offset
    duration_s INTEGER NOT NULL,
    audio      TEXT,              -- usually a presigned URL, valid for about an hour
    agent      TEXT,              -- JSON, as the server sent it
    extra      TEXT NOT NULL
);
"""

CALL_COLUMNS = (
    "id",
    "call_from",
    "call_to",
    "service",
    "bridge",
    "status",
    "start_at",
    "end_at",
    "duration_s",
    "billing_s",
    "pulsing",
    "charges",
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
RECORDING_COLUMNS = (
    "id",
    "call_from",
    "call_to",
    "created_at",
    "duration_s",
    "audio",
    "agent",
    "extra",
)

Row = tuple[Any, ...]
T = TypeVar("T", Call, Recording)


# --- records to rows ------------------------------------------------------------------


def iso(moment: pendulum.DateTime | None) -> str | None:
    """Return ISO 8601 text with the UTC offset, or None."""
    return None if moment is None else moment.isoformat()


def seconds(duration: pendulum.Duration) -> int:
    """Return a duration in whole seconds."""
    return int(duration.total_seconds())


def to_json(value: Any) -> str:
    """Return compact JSON with sorted keys (stable across runs)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def extra_json(extra: Mapping[str, Any]) -> str:
    """Return the keys the model does not know as a JSON object."""
    return to_json(dict(extra))


def call_row(call: Call) -> Row:
    """Return a call as a row of the ``calls`` table."""
    return (
        call.id,
        call.call_from,
        call.call_to,
        call.service,
        call.bridge,
        str(call.status),
        iso(call.start_at),
        iso(call.end_at),
        seconds(call.duration),
        seconds(call.billing),
        call.pulsing,
        str(call.charges),
        None if call.hangup_by is None else str(call.hangup_by),
        call.dtmf,
        call.location,
        call.region,
        call.provider,
        call.notes,
        call.name,
        call.audio,
        extra_json(call.extra),
    )


def recording_row(recording: Recording) -> Row:
    """Return a recording as a row of the ``recordings`` table."""
    return (
        recording.id,
        recording.call_from,
        recording.call_to,
        iso(recording.created_at),
        seconds(recording.duration),
        recording.audio,
        None if recording.agent is None else to_json(recording.agent),
        extra_json(recording.extra),
    )


def upsert_sql(table: str, columns: Sequence[str]) -> str:
    """Return the idempotent insert for ``table``: a record seen again replaces its row."""
    marks = ", ".join("?" for _ in columns)
    return f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) VALUES ({marks})"


# --- the database ---------------------------------------------------------------------


@contextlib.contextmanager
def open_database(path: Path) -> Iterator[sqlite3.Connection]:
    """Open (or create) the database and its tables; close it at the end."""
    connection = sqlite3.connect(path)
    try:
        connection.executescript(SCHEMA)
        yield connection
    finally:
        connection.close()


def write_batch(connection: sqlite3.Connection, sql: str, rows: list[Row]) -> None:
    """Write one batch in one transaction (committed, or rolled back on error)."""
    with connection:
        connection.executemany(sql, rows)


def count_rows(connection: sqlite3.Connection, table: str) -> int:
    """Return the number of rows in ``table``."""
    (count,) = connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
    return int(count)


# --- the copy -------------------------------------------------------------------------


async def copy_report(
    client: VoiceClient,
    connection: sqlite3.Connection,
    report: Report,
    start: dt.date,
    end: dt.date,
) -> int:
    """Copy one report's records of ``start``..``end``; return how many were written."""
    if report is Report.CALLS:
        return await copy_stream(
            client.calls(start, end), connection, upsert_sql("calls", CALL_COLUMNS), call_row
        )
    return await copy_stream(
        client.recordings(start, end),
        connection,
        upsert_sql("recordings", RECORDING_COLUMNS),
        recording_row,
    )


async def copy_stream(
    stream: RecordStream[T],
    connection: sqlite3.Connection,
    sql: str,
    to_row: Callable[[T], Row],
) -> int:
    """Write a stream's records in batches of ``BATCH_SIZE``; return how many."""
    written = 0
    async with stream:
        async for batch in stream.batches(BATCH_SIZE):
            # Kept on the event loop on purpose: one executemany of 500 rows into a
            # local file takes a few milliseconds, less than a page's round trip, and
            # the client keeps its requests in flight meanwhile. A slow or remote
            # database would belong in `await asyncio.to_thread(write_batch, ...)`
            # with a connection opened with check_same_thread=False.
            write_batch(connection, sql, [to_row(record) for record in batch])
            written += len(batch)
    return written


async def copy_all(
    config: ClientConfig | None,
    db: Path,
    reports: Sequence[Report],
    start: dt.date,
    end: dt.date,
) -> dict[Report, tuple[int, int]]:
    """Copy each report; return, per report, the records written and the table's rows."""
    results: dict[Report, tuple[int, int]] = {}
    with open_database(db) as connection:
        async with open_client(config) as client:
            for report in reports:
                written = await copy_report(client, connection, report, start, end)
                results[report] = (written, count_rows(connection, str(report)))
    return results


# --- the command line -----------------------------------------------------------------

REPORT_CHOICES: Mapping[str, tuple[Report, ...]] = {
    "all": (Report.CALLS, Report.RECORDINGS),
    "calls": (Report.CALLS,),
    "recordings": (Report.RECORDINGS,),
}


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, ClientConfig | None]:
    """Read the options; without ``--demo``, the environment too."""
    parser = range_parser("Copy calls and recordings of a date range into SQLite.")
    parser.add_argument("--db", required=True, type=Path, metavar="PATH", help="SQLite file")
    parser.add_argument(
        "--report", choices=tuple(REPORT_CHOICES), default="all", help="what to copy (all)"
    )
    return parse_range_args(parser, argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; return the exit status."""
    args, config = parse_args(argv)
    reports = REPORT_CHOICES[args.report]
    try:
        results = asyncio.run(copy_all(config, args.db, reports, args.start, args.end))
    except VoiceAPIError as exc:  # messages never contain the token
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    for report, (written, rows) in results.items():
        print(f"{report}: wrote {written} records; {args.db} table {report} has {rows} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
