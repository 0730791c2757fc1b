"""Partition files: where a window lands, and how it gets there whole.

A window is written to a temporary file in its run's folder ``OUT/_tmp/<run id>/``
(see :class:`~voiceapi_async.backfill.OutputLock`) and renamed into its
Hive-style partition (``OUT/calls/date=2024-03-05/part-0.parquet``), so a reader
never sees half a window and a rerun replaces the partition whole.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO

from voiceapi_async import Window

TMP_DIR = "_tmp"
"""Temporary files live here, inside the output directory (same file system)."""


def partition_path(window: Window, extension: str) -> Path:
    """Return a window's file, relative to the output directory."""
    return (
        Path(str(window.report)) / f"date={window.start.date().isoformat()}" / f"part-0.{extension}"
    )


def write_atomically(
    out_dir: Path,
    relative: Path,
    write: Callable[[IO[bytes]], object],
    *,
    tmp_dir: Path | None = None,
) -> str:
    """Write ``out_dir/relative`` with ``write`` through a temporary file and a rename.

    The temporary file goes to ``tmp_dir`` (default ``out_dir/_tmp``), which must be
    on the same file system. The file is flushed to disk before the rename, and the
    rename before returning.

    Returns:
        The SHA-256 of the file, in hex.
    """
    target = out_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = tmp_dir or out_dir / TMP_DIR
    tmp_dir.mkdir(parents=True, exist_ok=True)
    temporary = tmp_dir / f"{uuid.uuid4().hex}.{relative.name}"
    try:
        with open(temporary, "w+b") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
            handle.seek(0)
            checksum = hashlib.file_digest(handle, "sha256").hexdigest()
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)
    return checksum


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
