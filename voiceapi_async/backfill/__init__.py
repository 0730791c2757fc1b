"""Bulk historical backfills: resumable, idempotent exports of both reports.

``plan`` the windows, run them with a :class:`Backfill` through one client, and
each window lands whole in a Hive-style partition, written in an export format of
:mod:`voiceapi_async.export`, while a SQLite :class:`Manifest` remembers which are
done, so a crashed or interrupted run resumes where it stopped. An
:class:`OutputLock` keeps one run per output directory (``Backfill.run`` takes it
unless given one); output-side failures raise :class:`OutputError`::

    VoiceAPIError
    ├── OutputError       a full disk, an unwritable directory (.path)
    │   └── ManifestError the manifest is not ours or is damaged (left untouched)
    └── OutputLockedError      another run holds the lock (.holder: pid, host, start)

The manifest pins each report's :class:`DatasetSettings` (format, compression,
time zone, export schema version): a run with others raises
:class:`SettingsMismatchError` before any request, unless it rebuilds. A done window
is skipped only while its file is there as recorded; :func:`verify` checks a whole
dataset and :func:`verify_sample` compares some windows with the API.

``Backfill(..., audio=True)`` also downloads each recording's audio to
``OUT/audio/date=YYYY-MM-DD/<id><extension>``; the rows name each file and its
SHA-256, the manifest records every file, and a recordings window is done only
once all its audio is in place.
"""

from voiceapi_async.backfill._errors import (
    LockHolder,
    ManifestError,
    OutputError,
    OutputLockedError,
)
from voiceapi_async.backfill._files import partition_path
from voiceapi_async.backfill._lock import OutputLock
from voiceapi_async.backfill._manifest import Manifest, WindowEntry, WindowState
from voiceapi_async.backfill._plan import DEFAULT_SAFETY_LAG, lookback_start, plan
from voiceapi_async.backfill._runner import FATAL_ERRORS, Backfill, Progress, Summary, WindowResult
from voiceapi_async.backfill._settings import (
    DatasetSettings,
    IncompleteRebuildError,
    SettingChange,
    SettingsMismatchError,
)
from voiceapi_async.backfill._verify import (
    Problem,
    ReportCheck,
    VerifyReport,
    verify,
    verify_sample,
)

__all__ = [
    "DEFAULT_SAFETY_LAG",
    "FATAL_ERRORS",
    "Backfill",
    "DatasetSettings",
    "IncompleteRebuildError",
    "LockHolder",
    "Manifest",
    "ManifestError",
    "OutputError",
    "OutputLock",
    "OutputLockedError",
    "Problem",
    "Progress",
    "ReportCheck",
    "SettingChange",
    "SettingsMismatchError",
    "Summary",
    "VerifyReport",
    "WindowEntry",
    "WindowResult",
    "WindowState",
    "lookback_start",
    "partition_path",
    "plan",
    "verify",
    "verify_sample",
]
