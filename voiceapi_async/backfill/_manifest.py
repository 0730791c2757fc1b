"""The backfill manifest: one SQLite row per window, the run's memory across crashes."""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

import attrs

from voiceapi_async import Window
from voiceapi_async.backfill._errors import sqlite_error
from voiceapi_async.backfill._sqlite import open_database

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
    A change that cannot be written (a full disk) is rolled back and raises
    :class:`OutputError`; the file stays as its last committed change.

    Raises:
        ManifestError: (on opening) the file is not a manifest or is damaged; it is
            left untouched.
        OutputError: the file cannot be created, opened or written.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._db = open_database(self.path, _SCHEMA)

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
        return _Transaction(self._db, self.path)


class _Transaction:
    """One transaction; a SQLite failure rolls back and becomes an :class:`OutputError`."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self._path = path

    def __enter__(self) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise sqlite_error(exc, "write", self._path) from None

    def __exit__(self, exc_type: object, exc: object, _: object) -> None:
        try:
            self._db.execute("ROLLBACK" if exc_type else "COMMIT")
        except sqlite3.Error as error:
            if self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            if not isinstance(exc, BaseException):
                raise sqlite_error(error, "write", self._path) from None
        if isinstance(exc, sqlite3.Error):
            raise sqlite_error(exc, "write", self._path) from None


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
