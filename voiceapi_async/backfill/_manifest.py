"""The backfill manifest: one SQLite row per window, the run's memory across crashes."""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath

import attrs

from voiceapi_async import Window
from voiceapi_async.backfill._errors import ManifestError, sqlite_error
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
    updated_at  TEXT NOT NULL,
    size        INTEGER,
    written_with TEXT
)
"""
_SETTINGS_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (
    report      TEXT NOT NULL,
    name        TEXT NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (report, name)
)
"""
_AUDIO_SCHEMA = """
CREATE TABLE IF NOT EXISTS audio (
    recording_id TEXT PRIMARY KEY,
    window_key   TEXT NOT NULL,
    path         TEXT NOT NULL,
    size         INTEGER NOT NULL,
    sha256       TEXT NOT NULL
)
"""
_IDS_PER_QUERY = 500
SCHEMA_VERSION = 3
"""The manifest's own layout (SQLite ``user_version``).

Version 2 added each file's size, the settings each window was written with and
the settings each report is pinned to. A manifest of version 1 is migrated when
opened; its windows have no recorded size, so a rerun checks their files by hash.
Version 3 added the ``audio`` table: every recording's audio file (an older
manifest gets it empty when opened).
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
    size: int | None = None
    """The file's size in bytes when written; None in manifests older than sizes."""
    written_with: str | None = None
    """The settings the file was written with (a ``DatasetSettings`` fingerprint)."""


@attrs.frozen
class AudioEntry:
    """One recording's audio file, as the manifest records it."""

    recording_id: str
    window_key: str
    """The window that wrote it."""
    path: str
    """The file, relative to the output directory (``audio/date=YYYY-MM-DD/<id>.mp3``)."""
    size: int
    sha256: str


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
        self._db = open_database(self.path, _SCHEMA + ";" + _SETTINGS_SCHEMA + ";" + _AUDIO_SCHEMA)
        try:
            self._migrate()
        except BaseException:
            self._db.close()
            raise

    def _migrate(self) -> None:
        with self._transaction():
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise ManifestError(
                    f"{self.path} is a manifest of version {version}, newer than this "
                    f"voiceapi-async reads ({SCHEMA_VERSION}): upgrade voiceapi-async",
                    path=self.path,
                )
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(windows)")}
            if "size" not in columns:
                self._db.execute("ALTER TABLE windows ADD COLUMN size INTEGER")
            if "written_with" not in columns:
                self._db.execute("ALTER TABLE windows ADD COLUMN written_with TEXT")
            self._db.execute(_AUDIO_SCHEMA)
            if version < SCHEMA_VERSION:
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def register(self, windows: Iterable[Window]) -> None:
        """Add windows not yet known, as pending (a known key keeps its state, takes the bounds).

        A key names a day; its bounds change only with the time zone (a rebuild).
        """
        now = _now()
        with self._transaction():
            self._db.executemany(
                "INSERT INTO windows (key, report, start_at, end_at, state, updated_at) "
                "VALUES (?, ?, ?, ?, 'pending', ?) ON CONFLICT (key) DO UPDATE SET "
                "start_at = excluded.start_at, end_at = excluded.end_at",
                [
                    (w.key, str(w.report), w.start.isoformat(), w.end.isoformat(), now)
                    for w in windows
                ],
            )

    def entry(self, key: str) -> WindowEntry | None:
        """Return the row of ``key``, if any."""
        row = self._db.execute(
            "SELECT key, report, start_at, end_at, state, records, pages, output, checksum, "
            "attempts, last_error, size, written_with FROM windows WHERE key = ?",
            (key,),
        ).fetchone()
        return None if row is None else _entry(row)

    def entries(self) -> Iterator[WindowEntry]:
        """Every row, by key."""
        for row in self._db.execute(
            "SELECT key, report, start_at, end_at, state, records, pages, output, checksum, "
            "attempts, last_error, size, written_with FROM windows ORDER BY key"
        ):
            yield _entry(row)

    def start(self, key: str) -> None:
        """Mark a window running and count the attempt."""
        self._update(
            "UPDATE windows SET state = 'running', attempts = attempts + 1, updated_at = ? "
            "WHERE key = ?",
            (_now(), key),
        )

    def done(
        self,
        key: str,
        *,
        records: int,
        pages: int,
        output: str,
        checksum: str,
        size: int | None = None,
        written_with: str | None = None,
    ) -> None:
        """Mark a window written; other windows of the same partition are dropped.

        A day first written as a part (cut at the safety lag) and later whole has
        two keys but one partition: the older row no longer describes the file.
        """
        folder = str(PurePosixPath(output).parent) + "/"
        with self._transaction():
            self._db.execute(
                "UPDATE windows SET state = 'done', records = ?, pages = ?, output = ?, "
                "checksum = ?, size = ?, written_with = ?, last_error = NULL, updated_at = ? "
                "WHERE key = ?",
                (records, pages, output, checksum, size, written_with, _now(), key),
            )
            self._db.execute(
                "DELETE FROM windows WHERE key != ? AND substr(output, 1, ?) = ?",
                (key, len(folder), folder),
            )

    def outputs_in(self, folder: str) -> list[str]:
        """The files the manifest records in a partition folder (relative paths)."""
        prefix = folder.rstrip("/") + "/"
        return [
            str(row[0])
            for row in self._db.execute(
                "SELECT output FROM windows WHERE substr(output, 1, ?) = ?",
                (len(prefix), prefix),
            )
        ]

    def audio_files(self, recording_ids: Iterable[str] | None = None) -> dict[str, AudioEntry]:
        """The audio files recorded, by recording id (of ``recording_ids``, or all, by path)."""
        select = "SELECT recording_id, window_key, path, size, sha256 FROM audio"
        if recording_ids is None:
            rows = self._db.execute(select + " ORDER BY path").fetchall()
        else:
            ids = list(recording_ids)
            rows = []
            for first in range(0, len(ids), _IDS_PER_QUERY):
                chunk = ids[first : first + _IDS_PER_QUERY]
                marks = ", ".join("?" * len(chunk))
                rows += self._db.execute(
                    f"{select} WHERE recording_id IN ({marks})", chunk
                ).fetchall()
        return {
            str(row[0]): AudioEntry(str(row[0]), str(row[1]), str(row[2]), int(row[3]), str(row[4]))
            for row in rows
        }

    def record_audio(self, entry: AudioEntry) -> None:
        """Record a recording's audio file (replacing what was recorded for it)."""
        self._update(
            "INSERT INTO audio (recording_id, window_key, path, size, sha256) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (recording_id) DO UPDATE SET "
            "window_key = excluded.window_key, path = excluded.path, "
            "size = excluded.size, sha256 = excluded.sha256",
            (entry.recording_id, entry.window_key, entry.path, entry.size, entry.sha256),
        )

    def forget_audio(self, recording_ids: Iterable[str]) -> None:
        """Drop the audio files recorded for these recordings."""
        with self._transaction():
            self._db.executemany(
                "DELETE FROM audio WHERE recording_id = ?", [(rid,) for rid in recording_ids]
            )

    def record_size(self, key: str, size: int) -> None:
        """Record the size of a window's file (checked by hash, in an older manifest)."""
        self._update("UPDATE windows SET size = ? WHERE key = ?", (size, key))

    def settings(self, report: str) -> dict[str, str]:
        """The settings a report's partitions were written with (empty: none yet)."""
        return {
            str(name): str(value)
            for name, value in self._db.execute(
                "SELECT name, value FROM settings WHERE report = ? ORDER BY name", (str(report),)
            )
        }

    def pin(self, report: str, settings: Mapping[str, str]) -> None:
        """Record the settings a report's partitions are written with (replacing older ones)."""
        with self._transaction():
            self._db.execute("DELETE FROM settings WHERE report = ?", (str(report),))
            self._db.executemany(
                "INSERT INTO settings (report, name, value) VALUES (?, ?, ?)",
                [(str(report), name, value) for name, value in settings.items()],
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
    (
        key,
        report,
        start_at,
        end_at,
        state,
        records,
        pages,
        output,
        checksum,
        attempts,
        error,
        size,
        written_with,
    ) = row
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
        None if size is None else int(str(size)),
        None if written_with is None else str(written_with),
    )


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
