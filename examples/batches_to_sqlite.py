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

The tables (``calls``, ``recordings``) have the export's columns, in its order
(``voiceapi_async.export.COLUMNS``, the same as the backfill's files), filled from
``export.json_row``: the record id as primary key, timestamps as ISO 8601 text with
the account's UTC offset (they sort and compare as text within one offset),
``duration_seconds``/``billing_seconds`` as whole seconds, charges as ``TEXT``
holding the exact decimal (read it back with ``decimal.Decimal``), and ``agent`` and
``extra`` (every key the model does not know) as JSON text. Writes are
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
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from demo_client import open_client, parse_range_args, range_parser

from voiceapi_async import ClientConfig, Record, Report, VoiceAPIError, VoiceClient
from voiceapi_async.export import COLUMNS, JSON_COLUMNS, json_row

BATCH_SIZE = 500
"""Records per transaction."""

SQL_TYPES: Mapping[str, str] = {
    "id": "TEXT PRIMARY KEY",
    "duration_seconds": "INTEGER",
    "billing_seconds": "INTEGER",
    "pulsing": "INTEGER",
}
"""Column types other than ``TEXT`` (text keeps charges' exact decimals as sent)."""

Row = tuple[Any, ...]


# --- records to rows ------------------------------------------------------------------


def create_table_sql(report: Report) -> str:
    """Return the ``CREATE TABLE`` of a report: one column per export column."""
    columns = ", ".join(f"{column} {SQL_TYPES.get(column, 'TEXT')}" for column in COLUMNS[report])
    return f"CREATE TABLE IF NOT EXISTS {report} ({columns})"


def to_json(value: Any) -> str:
    """Return compact JSON with sorted keys (stable across runs)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sql_row(record: Record) -> Row:
    """Return a record's export row as SQL values: JSON columns as text, None as NULL."""
    return tuple(
        to_json(value) if column in JSON_COLUMNS and value is not None else value
        for column, value in json_row(record).items()
    )


def upsert_sql(report: Report) -> str:
    """Return the idempotent insert for a report: a record seen again replaces its row."""
    columns = COLUMNS[report]
    marks = ", ".join("?" for _ in columns)
    return f"INSERT OR REPLACE INTO {report} ({', '.join(columns)}) VALUES ({marks})"


# --- the database ---------------------------------------------------------------------


@contextlib.contextmanager
def open_database(path: Path) -> Iterator[sqlite3.Connection]:
    """Open (or create) the database and its tables; close it at the end."""
    connection = sqlite3.connect(path)
    try:
        for report in Report:
            connection.execute(create_table_sql(report))
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
    stream = client.calls(start, end) if report is Report.CALLS else client.recordings(start, end)
    sql = upsert_sql(report)
    written = 0
    async with stream:
        async for batch in stream.batches(BATCH_SIZE):
            # Kept on the event loop on purpose: one executemany of 500 rows into a
            # local file takes a few milliseconds, less than a page's round trip, and
            # the client keeps its requests in flight meanwhile. A slow or remote
            # database would belong in `await asyncio.to_thread(write_batch, ...)`
            # with a connection opened with check_same_thread=False.
            write_batch(connection, sql, [sql_row(record) for record in batch])
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
