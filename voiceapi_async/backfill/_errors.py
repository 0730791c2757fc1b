"""Errors of the output side of a backfill: the directory, its lock, the manifest."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import attrs

from voiceapi_async import VoiceAPIError


class OutputError(VoiceAPIError):
    """The output directory or the manifest cannot be written or read.

    A full disk, a read-only or unwritable directory, a file where a folder should
    be. Fatal to a run: every window would fail alike. The manifest is left as its
    last committed transaction, so a rerun after fixing the cause resumes.

    Attributes:
        path: the file or directory that failed.
    """

    def __init__(self, message: str, *, path: Path | str) -> None:
        self.path = str(path)
        super().__init__(message)


class ManifestError(OutputError):
    """The manifest is corrupt, not a SQLite database, or another program's database.

    Nothing is written to such a file.
    """


@attrs.frozen
class LockHolder:
    """Who holds an output directory's lock, as its lock file says."""

    pid: int
    host: str
    started_at: str
    run_id: str

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}, started {self.started_at}"


class OutputLockedError(VoiceAPIError):
    """Another run holds the output directory's lock.

    Attributes:
        path: the output directory.
        holder: the run holding it, or None when its lock file is not written yet.
    """

    def __init__(self, path: Path | str, holder: LockHolder | None) -> None:
        self.path = str(path)
        self.holder = holder
        who = str(holder) if holder else "it is starting"
        super().__init__(f"another backfill is writing to {self.path} ({who})")


def os_error(exc: OSError, doing: str, path: Path | str) -> OutputError:
    """Return an :class:`OutputError` naming what failed, where and why, in one line."""
    reason = _REASONS.get(exc.errno or 0) or exc.strerror or str(exc)
    return OutputError(f"cannot {doing} {path}: {reason}", path=path)


def sqlite_error(exc: sqlite3.Error, doing: str, path: Path | str) -> OutputError:
    """Return an :class:`OutputError` (a :class:`ManifestError` for a damaged or foreign file)."""
    text = str(exc)
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    if code == sqlite3.SQLITE_FULL or "disk is full" in text:
        return OutputError(f"cannot {doing} the manifest {path}: the disk is full", path=path)
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return OutputError(
            f"cannot {doing} the manifest {path}: another program is using it ({text})", path=path
        )
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_ERROR):
        return ManifestError(
            f"the manifest {path} is damaged or not a manifest ({text}): cannot {doing} it",
            path=path,
        )
    return OutputError(f"cannot {doing} the manifest {path}: {text}", path=path)


_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOTDIR: "a file is where a folder should be",
    errno.EEXIST: "a file is where a folder should be",
    errno.EISDIR: "a folder is where a file should be",
}
