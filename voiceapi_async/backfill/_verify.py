"""Checking a dataset: every partition against the manifest, and samples against the API."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import random
from pathlib import Path
from typing import Any

import attrs
import orjson
import pendulum

from voiceapi_async import Record, Report, VoiceClient, Window
from voiceapi_async.backfill._manifest import AudioEntry, Manifest, WindowEntry, WindowState
from voiceapi_async.export import AudioFile, get_format, sort_records

AUDIO_DIR = "audio"
"""The audio files' folder, inside the output directory."""


def file_sha256(path: Path) -> str:
    """Return the SHA-256 of a file, in hex."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Read a partition's rows back, in the format its name ends with."""
    return decode_rows(path.name, path.read_bytes())


def decode_rows(name: str, data: bytes) -> list[dict[str, Any]]:
    """Decode export bytes into rows, by the file name's extension."""
    if name.endswith(".gz"):
        data = gzip.decompress(data)
        name = name.removesuffix(".gz")
    if name.endswith(".jsonl"):
        return [orjson.loads(line) for line in data.splitlines()]
    if name.endswith(".csv"):
        return list(csv.DictReader(io.StringIO(data.decode())))
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        return pq.read_table(io.BytesIO(data)).to_pylist()  # type: ignore[no-any-return]
    raise ValueError(f"{name}: not a partition file (.jsonl, .jsonl.gz, .csv or .parquet)")


def count_records(path: Path) -> int:
    """Count a partition's records: JSON Lines lines, CSV rows, Parquet ``num_rows``."""
    if path.name.endswith(".parquet"):
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    return len(read_rows(path))


@attrs.frozen
class Problem:
    """One thing about a dataset that does not hold."""

    report: str
    path: str
    """The partition file (relative to the output directory), or the window key."""
    kind: str
    """``missing``, ``size``, ``checksum``, ``records``, ``unreadable``, ``format``,
    ``not done``, ``stray`` or ``sample``."""
    detail: str


@attrs.define
class ReportCheck:
    """What was checked of one report."""

    partitions: int = 0
    records: int = 0
    sampled: int = 0
    audio_files: int = 0
    """Audio files checked (recordings)."""
    audio_bytes: int = 0
    """Their bytes."""


@attrs.define
class VerifyReport:
    """The outcome of :func:`verify` (and :func:`verify_sample`)."""

    reports: dict[str, ReportCheck] = attrs.field(factory=dict)
    """Per report: partitions and records checked, windows sampled."""
    problems: list[Problem] = attrs.field(factory=list)

    @property
    def ok(self) -> bool:
        """Whether everything checked holds."""
        return not self.problems

    def merge(self, other: VerifyReport) -> None:
        """Add another report's counts and problems to this one."""
        for report, check in other.reports.items():
            mine = self.reports.setdefault(report, ReportCheck())
            mine.partitions += check.partitions
            mine.records += check.records
            mine.sampled += check.sampled
            mine.audio_files += check.audio_files
            mine.audio_bytes += check.audio_bytes
        self.problems.extend(other.problems)


def _extension(pins: dict[str, str]) -> str | None:
    fmt = pins.get("format")
    if fmt is None:
        return None
    return "jsonl.gz" if fmt == "jsonl" and pins.get("compression") == "gzip" else fmt


def verify(out_dir: Path | str, manifest: Manifest) -> VerifyReport:
    """Check every partition of ``out_dir`` against ``manifest``; no request is made.

    Each window the manifest records as done must have its file, of the pinned
    format, with the recorded size and SHA-256, holding the recorded number of
    records (read back with its format). Windows not done (pending, failed) and
    files under a report's folder that the manifest does not know (stray) are
    problems too. Every audio file the manifest records must be there with its
    size and SHA-256, and ``OUT/audio/`` must hold no other file. The manifest
    itself, lock files and temporary folders (names starting with ``_`` or ``.`` in
    ``out_dir``) are not looked at.
    """
    out = Path(out_dir)
    result = VerifyReport()
    known: set[str] = set()
    for entry in manifest.entries():
        check = result.reports.setdefault(entry.report, ReportCheck())
        if entry.output:
            known.add(entry.output)
        if entry.state is not WindowState.DONE:
            detail = f"{entry.state}" + (f": {entry.last_error}" if entry.last_error else "")
            result.problems.append(Problem(entry.report, entry.key, "not done", detail))
            continue
        check.partitions += 1
        problem = _check_partition(out, entry, _extension(manifest.settings(entry.report)))
        if problem is None:
            check.records += entry.records
        else:
            result.problems.append(problem)
    for report in Report:
        folder = out / str(report)
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            relative = str(path.relative_to(out))
            if path.is_file() and relative not in known:
                result.reports.setdefault(str(report), ReportCheck())
                result.problems.append(
                    Problem(str(report), relative, "stray", "a file the manifest does not know")
                )
    _check_audio(out, manifest, result)
    return result


def _check_audio(out: Path, manifest: Manifest, result: VerifyReport) -> None:
    """Check every recorded audio file, and that ``OUT/audio/`` holds no other."""
    report = str(Report.RECORDINGS)
    files = manifest.audio_files()
    if files:
        check = result.reports.setdefault(report, ReportCheck())
    for entry in files.values():
        path = out / entry.path
        found = _audio_problem(path, entry)
        if found is not None:
            kind, detail = found
            result.problems.append(
                Problem(report, entry.path, kind, f"audio of {entry.recording_id}: {detail}")
            )
        else:
            check.audio_files += 1
            check.audio_bytes += entry.size
    known = {entry.path for entry in files.values()}
    folder = out / AUDIO_DIR
    if folder.is_dir():
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(out).as_posix()
            if path.is_file() and relative not in known:
                result.reports.setdefault(report, ReportCheck())
                result.problems.append(
                    Problem(report, relative, "stray", "a file the manifest does not know")
                )


def _audio_problem(path: Path, entry: AudioEntry) -> tuple[str, str] | None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "missing", "no file"
    if size != entry.size:
        return "size", f"{size:,} bytes, the manifest says {entry.size:,}"
    if file_sha256(path) != entry.sha256:
        return "checksum", "the SHA-256 differs from the manifest's"
    return None


def _check_partition(out: Path, entry: WindowEntry, extension: str | None) -> Problem | None:
    relative = entry.output or ""

    def problem(kind: str, detail: str) -> Problem:
        return Problem(entry.report, relative, kind, detail)

    path = out / relative
    if extension is not None and not relative.endswith(f".{extension}"):
        return problem("format", f"the dataset is pinned to {extension} files")
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return problem("missing", f"window {entry.key} has no file")
    if entry.size is not None and size != entry.size:
        return problem("size", f"{size:,} bytes, the manifest says {entry.size:,}")
    if file_sha256(path) != entry.checksum:
        return problem("checksum", "the SHA-256 differs from the manifest's")
    try:
        records = count_records(path)
    except Exception as exc:  # any failure to read the file is the finding
        return problem("unreadable", f"{type(exc).__name__}: {exc}")
    if records != entry.records:
        return problem("records", f"{records:,} records, the manifest says {entry.records:,}")
    return None


async def verify_sample(
    client: VoiceClient,
    out_dir: Path | str,
    manifest: Manifest,
    count: int,
    *,
    rng: random.Random | None = None,
) -> VerifyReport:
    """Read ``count`` random done windows again from the API and compare them with the files.

    Each window's records are exported in the dataset's pinned settings and read
    back like its file: the same ids in the same order, and the same rows.

    Raises:
        ValueError: ``count`` below 1.
        VoiceAPIError: a window could not be read.
    """
    if count < 1:
        raise ValueError(f"the sample needs 1 or more windows, not {count}")
    out = Path(out_dir)
    result = VerifyReport()
    done = [e for e in manifest.entries() if e.state is WindowState.DONE and e.output]
    for entry in (rng or random.Random()).sample(done, min(count, len(done))):
        check = result.reports.setdefault(entry.report, ReportCheck())
        check.sampled += 1
        pins = manifest.settings(entry.report)
        fmt = get_format(
            pins.get("format", "jsonl"),
            compress=pins.get("compression") == "gzip",
            timezone=pins.get("timezone", client.config.timezone),
        )
        window = Window(Report(entry.report), _moment(entry.start_at), _moment(entry.end_at))
        records = sort_records(await _fetch(client, window))
        buffer = io.BytesIO()
        audio = {
            rid: AudioFile(found.path, found.sha256)
            for rid, found in manifest.audio_files(r.id for r in records).items()
        }
        with fmt.open(buffer, window.report) as writer:
            writer.write(records, audio=audio if pins.get("audio") == "on" else None)
        fresh = decode_rows(str(entry.output), buffer.getvalue())
        try:
            stored = read_rows(out / str(entry.output))
        except Exception as exc:  # any failure to read the file is the finding
            stored, detail = [], f"unreadable: {type(exc).__name__}: {exc}"
        else:
            detail = _compare(stored, fresh)
        if detail:
            result.problems.append(Problem(entry.report, str(entry.output), "sample", detail))
    return result


def _moment(text: str) -> pendulum.DateTime:
    moment = pendulum.parse(text)
    assert isinstance(moment, pendulum.DateTime)
    return moment


async def _fetch(client: VoiceClient, window: Window) -> list[Record]:
    stream = (
        client.calls(window.start, window.end)
        if window.report is Report.CALLS
        else client.recordings(window.start, window.end)
    )
    records: list[Record] = []
    async with stream:
        async for page in stream.pages():
            records.extend(page.records)
    return records


def _compare(stored: list[dict[str, Any]], fresh: list[dict[str, Any]]) -> str:
    stored_ids = [row.get("id") for row in stored]
    fresh_ids = [row.get("id") for row in fresh]
    if stored_ids != fresh_ids:
        missing = len(set(fresh_ids) - set(stored_ids))
        extra = len(set(stored_ids) - set(fresh_ids))
        if missing or extra:
            return (
                f"ids differ from the API's: {missing} missing from the file, "
                f"{extra} not in the API"
            )
        return "the same ids as the API, in another order"
    differing = [(a, b) for a, b in zip(stored, fresh, strict=True) if a != b]
    if differing:
        first, truth = differing[0]
        columns = sorted(k for k in set(first) | set(truth) if first.get(k) != truth.get(k))
        return (
            f"{len(differing)} record(s) differ from the API's, first {first.get('id')} "
            f"({', '.join(columns)})"
        )
    return ""
