"""The backfill manifest: one SQLite row per window, the run's memory across crashes."""

from __future__ import annotations

import datetime as dt
import enum
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

import attrs

from voiceapi_async import Window

_SCHEMA = """
CREATE TABLE IF NOT EXISTS windows (
    key         TEXT PRIMARY KEY,
    report      TEXT NOT NULL,
    start_at    TEXT NOT NULL,
    end_at      TEXT NOT NULL,
    state       TEXT NOT NULL,
    records     INTEGER NOT NULL DEFAULT 0,
    pages       INTEGER NOT NULL DEFAULT 0,
    output      TEXT,
    checksum    TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    updated_at  TEXT NOT NULL
)
"""


class WindowState(enum.StrEnum):
    """Where a window stands."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@attrs.frozen
class WindowEntry:
    """One manifest row."""

    key: str
    report: str
    start_at: str
    end_at: str
    state: WindowState
    records: int
    pages: int
    output: str | None
    checksum: str | None
    attempts: int
    last_error: str | None


class Manifest:
    """Window states in SQLite (stdlib ``sqlite3``); every change is its own transaction.

    A crash leaves at worst a window marked ``running``, which the next run takes again.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def register(self, windows: Iterable[Window]) -> None:
        """Add windows not yet known, as pending."""
        now = _now()
        with self._transaction():
            self._db.executemany(
                "INSERT OR IGNORE INTO windows (key, report, start_at, end_at, state, updated_at) "
                "VALUES (?, ?, ?, ?, 'pending', ?)",
                [
                    (w.key, str(w.report), w.start.isoformat(), w.end.isoformat(), now)
                    for w in windows
                ],
            )

    def entry(self, key: str) -> WindowEntry | None:
        """Return the row of ``key``, if any."""
        row = self._db.execute(
            "SELECT key, report, start_at, end_at, state, records, pages, output, checksum, "
            "attempts, last_error FROM windows WHERE key = ?",
            (key,),
        ).fetchone()
        return None if row is None else _entry(row)

    def entries(self) -> Iterator[WindowEntry]:
        """Every row, by key."""
        for row in self._db.execute(
            "SELECT key, report, start_at, end_at, state, records, pages, output, checksum, "
            "attempts, last_error FROM windows ORDER BY key"
        ):
            yield _entry(row)

    def start(self, key: str) -> None:
        """Mark a window running and count the attempt."""
        self._update(
            "UPDATE windows SET state = 'running', attempts = attempts + 1, updated_at = ? "
            "WHERE key = ?",
            (_now(), key),
        )

    def done(self, key: str, *, records: int, pages: int, output: str, checksum: str) -> None:
        """Mark a window written."""
        self._update(
            "UPDATE windows SET state = 'done', records = ?, pages = ?, output = ?, checksum = ?, "
            "last_error = NULL, updated_at = ? WHERE key = ?",
            (records, pages, output, checksum, _now(), key),
        )

    def failed(self, key: str, error: str) -> None:
        """Mark a window failed, keeping the error's message."""
        self._update(
            "UPDATE windows SET state = 'failed', last_error = ?, updated_at = ? WHERE key = ?",
            (error, _now(), key),
        )

    def reset(self, key: str) -> None:
        """Put a window back to pending (it was interrupted)."""
        self._update(
            "UPDATE windows SET state = 'pending', updated_at = ? WHERE key = ?", (_now(), key)
        )

    def _update(self, sql: str, params: tuple[object, ...]) -> None:
        with self._transaction():
            self._db.execute(sql, params)

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")


def _entry(row: tuple[object, ...]) -> WindowEntry:
    key, report, start_at, end_at, state, records, pages, output, checksum, attempts, error = row
    return WindowEntry(
        str(key),
        str(report),
        str(start_at),
        str(end_at),
        WindowState(str(state)),
        int(str(records)),
        int(str(pages)),
        None if output is None else str(output),
        None if checksum is None else str(checksum),
        int(str(attempts)),
        None if error is None else str(error),
    )


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
