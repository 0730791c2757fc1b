"""The settings a dataset is pinned to: a rerun with others would mix two kinds of files."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from voiceapi_async.export import EXPORT_SCHEMA_VERSION, ExportFormat, JsonLines, Parquet

_UNPINNED = {"audio": "off"}
"""What a setting pinned before it existed was."""


@attrs.frozen
class DatasetSettings:
    """What every partition of a report is written with, pinned in the manifest.

    Attributes:
        format: the export format's name (``jsonl``, ``csv``, ``parquet``).
        compression: ``gzip`` or ``none`` for JSON Lines, the codec for Parquet,
            ``none`` for CSV.
        timezone: the zone the days (windows and partitions) are cut in.
        export_schema: :data:`voiceapi_async.export.EXPORT_SCHEMA_VERSION` of the files.
        audio: whether recordings' audio files are downloaded with their rows
            (always off for calls).
    """

    format: str
    compression: str
    timezone: str
    export_schema: int = EXPORT_SCHEMA_VERSION
    audio: bool = False

    @classmethod
    def of(cls, fmt: ExportFormat, timezone: str, *, audio: bool = False) -> DatasetSettings:
        """Return the settings of files written in ``fmt`` for days in ``timezone``."""
        if isinstance(fmt, JsonLines):
            compression = "gzip" if fmt.compress else "none"
        elif isinstance(fmt, Parquet):
            compression = fmt.compression
        else:
            compression = "none"
        return cls(fmt.name, compression, timezone, audio=audio)

    def as_pins(self) -> dict[str, str]:
        """The settings as the manifest stores them."""
        return {
            "format": self.format,
            "compression": self.compression,
            "timezone": self.timezone,
            "export_schema": str(self.export_schema),
            "audio": "on" if self.audio else "off",
        }

    @property
    def fingerprint(self) -> str:
        """The settings as one text, stored with every window written in them."""
        return ";".join(f"{name}={value}" for name, value in self.as_pins().items())

    def changes_from(self, pins: Mapping[str, str]) -> list[SettingChange]:
        """What differs from the pinned ``pins`` (compression only within one format)."""
        changes = [
            SettingChange(name, pinned, value)
            for name, value in self.as_pins().items()
            if (pinned := pins.get(name, _UNPINNED.get(name, "unknown"))) != value
        ]
        if any(change.name == "format" for change in changes):
            changes = [change for change in changes if change.name != "compression"]
        return changes


@attrs.frozen
class SettingChange:
    """One setting that differs between the dataset and this run."""

    name: str
    """``format``, ``compression``, ``timezone``, ``export_schema`` or ``audio``."""
    pinned: str
    """The dataset's value."""
    requested: str
    """This run's value."""

    def __str__(self) -> str:
        return f"{self.name} was {self.pinned}, now {self.requested}"


class SettingsMismatchError(ValueError):
    """A run's settings differ from those the dataset was written with.

    Nothing was requested or written. Run with the dataset's settings, or rebuild
    (``Backfill(..., rebuild=True)``, ``voiceapi backfill --rebuild``) to rewrite
    every window in the new ones.

    Attributes:
        report: the report whose partitions were written otherwise.
        changes: each differing setting.
    """

    def __init__(self, report: str, changes: list[SettingChange]) -> None:
        self.report = report
        self.changes = tuple(changes)
        super().__init__(
            f"the {report} partitions were written with other settings: "
            + "; ".join(str(change) for change in changes)
            + ": run with the same settings, or rebuild to rewrite every window"
        )


class IncompleteRebuildError(ValueError):
    """A rebuild's windows do not cover every day the dataset holds.

    Rewriting only some days would leave the others in the old settings. Nothing
    was requested or written.

    Attributes:
        report: the report concerned.
        days: the days (``YYYY-MM-DD``) the dataset holds outside the run's windows.
    """

    def __init__(self, report: str, days: list[str]) -> None:
        self.report = report
        self.days = tuple(days)
        super().__init__(
            f"a rebuild rewrites the whole dataset, but {len(days)} {report} day(s) it holds "
            f"lie outside this run ({days[0]} to {days[-1]}): "
            "give a range covering every day of the dataset"
        )
