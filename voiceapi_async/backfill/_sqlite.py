"""Opening the manifest's database: create it, or check it is ours and whole; never touch another.

A manifest carries :data:`APPLICATION_ID` in its SQLite header. A file without it
is taken as a manifest of an earlier release only when its ``windows`` table has
the columns those releases wrote; anything else (not SQLite, another program's
database, a damaged file) raises :class:`ManifestError` before a byte is written.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from voiceapi_async.backfill._errors import ManifestError, os_error, sqlite_error

APPLICATION_ID = 0x56416266
"""``PRAGMA application_id`` of a backfill manifest ("VAbf")."""

_HEADER = b"SQLite format 3\x00"
_LEGACY_COLUMNS = frozenset(
    {
        "key",
        "report",
        "start_at",
        "end_at",
        "state",
        "records",
        "pages",
        "output",
        "checksum",
        "attempts",
        "last_error",
        "updated_at",
    }
)


def open_database(path: Path, schema: str) -> sqlite3.Connection:
    """Return a connection (autocommit, WAL) to the manifest at ``path``, created if absent.

    Raises:
        ManifestError: the file is not a manifest, or is damaged.
        OutputError: the file or its folder cannot be created, opened or written.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        header = path.read_bytes()[:100] if path.is_file() else b""
    except OSError as exc:
        raise os_error(exc, "open the manifest", path) from None
    if header:
        _check_header(path, header)
    try:
        db = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as exc:
        raise sqlite_error(exc, "open", path) from None
    try:
        if not header:
            db.executescript(
                f"BEGIN IMMEDIATE; {schema}; PRAGMA application_id = {APPLICATION_ID}; COMMIT;"
            )
        else:
            _check_tables(db, path, int.from_bytes(header[68:72], "big"))
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(schema)
    except sqlite3.Error as exc:
        db.close()
        raise sqlite_error(exc, "open", path) from None
    except BaseException:
        db.close()
        raise
    return db


def _check_header(path: Path, header: bytes) -> None:
    if len(header) < 100 or not header.startswith(_HEADER):
        raise ManifestError(
            f"{path} is not a backfill manifest (not a SQLite database): move it away, "
            "or give another --out or --state",
            path=path,
        )
    application_id = int.from_bytes(header[68:72], "big")
    if application_id not in (0, APPLICATION_ID):
        raise _foreign(path, f"application id {application_id:#x}")
    if application_id == 0:
        _check_legacy_read_only(path)


def _check_legacy_read_only(path: Path) -> None:
    """Read a header-less file's tables without writing to it (not even a checkpoint)."""
    try:
        db = sqlite3.connect(path.absolute().as_uri() + "?mode=ro", uri=True)
    except sqlite3.Error:
        return  # checked again on the writable connection
    try:
        _check_legacy_tables(db, path)
    except sqlite3.OperationalError:
        return  # a WAL file a killed run left: readable only with write access
    except sqlite3.DatabaseError as exc:
        raise sqlite_error(exc, "read", path) from None
    finally:
        db.close()


def _check_tables(db: sqlite3.Connection, path: Path, application_id: int) -> None:
    if application_id == 0:
        _check_legacy_tables(db, path)
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    elif not _columns(db, "windows"):
        raise ManifestError(f"the manifest {path} is damaged (no windows table)", path=path)
    problems = [row[0] for row in db.execute("PRAGMA quick_check").fetchall()]
    if problems != ["ok"]:
        raise ManifestError(
            f"the manifest {path} is damaged ({problems[0]}): move it away and run again "
            "(every window is then fetched again)",
            path=path,
        )


def _check_legacy_tables(db: sqlite3.Connection, path: Path) -> None:
    columns = _columns(db, "windows")
    if not columns >= _LEGACY_COLUMNS:
        tables = sorted(
            name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        )
        raise _foreign(path, f"tables: {', '.join(tables) or 'none'}")


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def _foreign(path: Path, detail: str) -> ManifestError:
    return ManifestError(
        f"{path} is not a backfill manifest (a SQLite database of another program, {detail}): "
        "it was left untouched; give another --out or --state",
        path=path,
    )
