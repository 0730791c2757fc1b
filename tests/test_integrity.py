import contextlib
import datetime as dt
import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_cli import FIXED_CLOCK, TOKEN, backfill_args, exported_ids, voiceapi
from voiceapi_async import RetryPolicy, VoiceClient
from voiceapi_async.backfill import (
    Backfill,
    IncompleteRebuildError,
    Manifest,
    OutputLock,
    SettingsMismatchError,
    Summary,
    plan,
    verify,
)
from voiceapi_async.backfill._verify import decode_rows
from voiceapi_async.export import get_format
from voiceapi_async.testing import Faults, SimulatorConfig, VoiceSimulator, run_simulator
from voiceapi_async.testing._plugin import serve_in_thread

TZ = "Asia/Kolkata"
NOW = dt.datetime(2024, 3, 10, 15, 30, tzinfo=dt.UTC)
FAST = RetryPolicy(attempts=3, wait_initial=0.0, wait_max=0.01, wait_jitter=0.0)
KOLKATA_RANGE = (
    dt.datetime(2024, 3, 1, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
    dt.datetime(2024, 3, 3, 23, 59, 59, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
)


@pytest.fixture
def sim() -> Iterator[VoiceSimulator]:
    config = SimulatorConfig(token=TOKEN, calls_per_day=30, rate_limit=0, clock=lambda: FIXED_CLOCK)
    with serve_in_thread(config) as simulator:
        yield simulator


def env(sim: VoiceSimulator, timezone: str = TZ) -> dict[str, str]:
    return {
        "VOICEAPI_BASE_URL": sim.base_url,
        "VOICEAPI_TOKEN": TOKEN,
        "VOICEAPI_TIMEZONE": timezone,
    }


def backfill(out: Path, fmt: str = "jsonl", *extra: str, what: str = "all") -> list[str]:
    """Return the arguments of a backfill of 2024-03-01..03 (all reports unless told)."""
    return backfill_args(out, fmt, *extra, what=what)


def partitions(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("part-0.*"))}


def test_a_format_change_stops_before_any_request_and_rebuild_rewrites_every_window(
    sim: VoiceSimulator, tmp_path: Path
) -> None:
    """--format parquet on a JSONL dataset: exit 2 naming it; --rebuild leaves only Parquet."""
    assert voiceapi(*backfill(tmp_path), env=env(sim)).returncode == 0
    before = partitions(tmp_path)
    requests = len(sim.observed.report_requests())
    changed = voiceapi(*backfill(tmp_path, "parquet"), env=env(sim))
    assert changed.returncode == 2, changed.stderr
    assert "--format was jsonl, now parquet" in changed.stderr
    assert "--rebuild" in changed.stderr
    assert "Traceback" not in changed.stderr
    assert len(sim.observed.report_requests()) == requests
    assert partitions(tmp_path) == before

    rebuilt = voiceapi(*backfill(tmp_path, "parquet", "--rebuild"), env=env(sim))
    assert rebuilt.returncode == 0, rebuilt.stderr
    files = sorted(p.name for p in tmp_path.rglob("part-0.*"))
    assert files == ["part-0.parquet"] * 6
    for report in ("calls", "recordings"):
        assert set(exported_ids(tmp_path, report, "parquet")) == sim.ids_between(
            report, *KOLKATA_RANGE
        )
    again = voiceapi(*backfill(tmp_path, "parquet"), env=env(sim))
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("3 window(s) already done: skipped") == 2
    assert voiceapi(*backfill(tmp_path, "jsonl"), env=env(sim)).returncode == 2
    checked = voiceapi("verify", "--out", str(tmp_path))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_time_zone_change_stops_and_rebuild_recuts_the_days(tmp_path: Path) -> None:
    """A dataset cut in the wrong zone: --timezone UTC exits 2 naming it; --rebuild recuts it."""
    config = SimulatorConfig(
        token=TOKEN, timezone="UTC", calls_per_day=30, rate_limit=0, clock=lambda: FIXED_CLOCK
    )
    with serve_in_thread(config) as sim:
        _time_zone_change(sim, tmp_path)


def _time_zone_change(sim: VoiceSimulator, tmp_path: Path) -> None:
    assert voiceapi(*backfill(tmp_path, what="calls"), env=env(sim)).returncode == 0
    changed = voiceapi(*backfill(tmp_path, what="calls"), env=env(sim, "UTC"))
    assert changed.returncode == 2, changed.stderr
    assert "--timezone was Asia/Kolkata, now UTC" in changed.stderr
    narrow = voiceapi(
        *backfill(tmp_path, what="calls"), "--rebuild", "--to", "2024-03-02", env=env(sim, "UTC")
    )
    assert narrow.returncode == 2, narrow.stderr
    assert "2024-03-03" in narrow.stderr
    rebuilt = voiceapi(*backfill(tmp_path, "jsonl", "--rebuild", what="calls"), env=env(sim, "UTC"))
    assert rebuilt.returncode == 0, rebuilt.stderr
    rows = [
        row
        for path in sorted(tmp_path.rglob("part-0.jsonl"))
        for row in decode_rows(path.name, path.read_bytes())
    ]
    assert rows
    assert all(row["end_at"].endswith("+00:00") for row in rows)
    utc = (
        dt.datetime(2024, 3, 1, tzinfo=dt.UTC),
        dt.datetime(2024, 3, 3, 23, 59, 59, tzinfo=dt.UTC),
    )
    assert {row["id"] for row in rows} == sim.ids_between("calls", *utc)
    assert voiceapi(*backfill(tmp_path, what="calls"), env=env(sim, "UTC")).returncode == 0
    assert voiceapi("verify", "--out", str(tmp_path)).returncode == 0


def test_an_edited_byte_is_skipped_by_default_found_by_verify_and_repaired_with_verify(
    sim: VoiceSimulator, tmp_path: Path
) -> None:
    """One byte changed, same size: a plain rerun keeps it, verify exits 1, --verify repairs it."""
    assert voiceapi(*backfill(tmp_path), env=env(sim)).returncode == 0
    good = partitions(tmp_path)
    target = tmp_path / "calls" / "date=2024-03-02" / "part-0.jsonl"
    data = bytearray(target.read_bytes())
    at = data.index(b'"status":"') + len(b'"status":"')
    data[at] = ord("X") if data[at] != ord("X") else ord("Y")
    target.write_bytes(bytes(data))

    plain = voiceapi(*backfill(tmp_path), env=env(sim))
    assert plain.returncode == 0, plain.stderr
    assert target.read_bytes() == bytes(data)
    found = voiceapi("verify", "--out", str(tmp_path))
    assert found.returncode == 1
    assert "calls/date=2024-03-02/part-0.jsonl" in found.stdout
    assert "checksum" in found.stdout

    repaired = voiceapi(*backfill(tmp_path, "jsonl", "--verify"), env=env(sim))
    assert repaired.returncode == 0, repaired.stderr
    assert "repaired" in repaired.stdout
    assert partitions(tmp_path) == good
    assert voiceapi("verify", "--out", str(tmp_path)).returncode == 0


def test_verify_finds_stray_missing_and_miscounted_files(
    sim: VoiceSimulator, tmp_path: Path
) -> None:
    """A stray file, a deleted one, a wrong record count: verify exits 1 naming each."""
    assert voiceapi(*backfill(tmp_path, what="calls"), env=env(sim)).returncode == 0
    ok = voiceapi("verify", "--out", str(tmp_path))
    assert ok.returncode == 0, ok.stdout
    assert "every partition holds" in ok.stderr
    stray = tmp_path / "calls" / "date=2024-02-01" / "part-0.jsonl"
    stray.parent.mkdir()
    stray.write_bytes(b"")
    (tmp_path / "calls" / "date=2024-03-01" / "part-0.jsonl").unlink()
    with contextlib.closing(sqlite3.connect(tmp_path / "_manifest.sqlite")) as db:
        db.execute("UPDATE windows SET records = records + 1 WHERE key = 'calls/2024-03-03'")
        db.commit()
    found = voiceapi("verify", "--out", str(tmp_path))
    assert found.returncode == 1
    for name, kind in (
        ("date=2024-02-01/part-0.jsonl", "stray"),
        ("date=2024-03-01/part-0.jsonl", "missing"),
        ("date=2024-03-03/part-0.jsonl", "records"),
    ):
        line = next(line for line in found.stdout.splitlines() if name in line)
        assert kind in line
    assert "date=2024-03-02" not in found.stdout
    assert voiceapi("verify", "--out", str(tmp_path / "nothing")).returncode == 2


def test_verify_waits_for_no_backfill_and_refuses_a_foreign_manifest(
    sim: VoiceSimulator, tmp_path: Path
) -> None:
    """Verify under a running backfill's lock exits 7; on a foreign manifest 6, one line."""
    assert voiceapi(*backfill(tmp_path, what="calls"), env=env(sim)).returncode == 0
    with OutputLock(tmp_path):
        held = voiceapi("verify", "--out", str(tmp_path))
    assert held.returncode == 7, held.stderr
    assert "another backfill is writing" in held.stderr
    assert voiceapi("verify", "--out", str(tmp_path)).returncode == 0
    foreign = tmp_path / "other.sqlite"
    foreign.write_bytes(b"not a database" * 20)
    refused = voiceapi("verify", "--out", str(tmp_path), "--state", str(foreign))
    assert refused.returncode == 6, refused.stderr
    assert "Traceback" not in refused.stderr
    assert foreign.read_bytes() == b"not a database" * 20


def test_verify_sample_compares_windows_with_the_api(sim: VoiceSimulator, tmp_path: Path) -> None:
    """--sample 2 passes on a good dataset, fails on records altered with a consistent manifest."""
    args = [*backfill(tmp_path, "csv", what="calls")]
    args[args.index("2024-03-03")] = "2024-03-02"  # two windows: a sample of 2 reads both
    assert voiceapi(*args, env=env(sim)).returncode == 0
    before = len(sim.observed.report_requests())
    good = voiceapi("verify", "--out", str(tmp_path), "--sample", "2", env=env(sim))
    assert good.returncode == 0, good.stdout + good.stderr
    assert len(sim.observed.report_requests()) - before >= 2  # both windows read again

    target = tmp_path / "calls" / "date=2024-03-02" / "part-0.csv"
    text = target.read_text()
    header, first, rest = text.split("\n", 2)
    fields = first.split(",")
    fields[2] = "+910000000000"  # call_to: a wrong export, same count
    altered = "\n".join([header, ",".join(fields), rest]).encode()
    target.write_bytes(altered)
    with contextlib.closing(sqlite3.connect(tmp_path / "_manifest.sqlite")) as db:
        db.execute(
            "UPDATE windows SET size = ?, checksum = ? WHERE key = 'calls/2024-03-02'",
            (len(altered), hashlib.sha256(altered).hexdigest()),
        )
        db.commit()
    assert voiceapi("verify", "--out", str(tmp_path)).returncode == 0
    bad = voiceapi("verify", "--out", str(tmp_path), "--sample", "2", env=env(sim))
    assert bad.returncode == 1, bad.stdout + bad.stderr
    line = next(line for line in bad.stdout.splitlines() if "2024-03-02" in line)
    assert "sample" in line
    assert "call_to" in bad.stdout


# -- the library ------------------------------------------------------------------------


async def run(
    sim: VoiceSimulator,
    out: Path,
    fmt: str = "jsonl",
    *,
    retry: RetryPolicy = FAST,
    **options: Any,
) -> dict[str, Summary]:
    summaries = {}
    async with VoiceClient(
        base_url=sim.base_url, token=TOKEN, timezone=TZ, retry=retry, rate_limit=0
    ) as client:
        with Manifest(out / "_manifest.sqlite") as manifest:
            for report in ("calls", "recordings"):
                windows = plan(report, "2024-03-01", "2024-03-03", TZ, now=NOW)
                runner = Backfill(client, manifest, get_format(fmt, timezone=TZ), out, **options)
                summaries[report] = await runner.run(windows)
    return summaries


@pytest.mark.asyncio
async def test_a_deleted_partition_is_fetched_again_and_counted_repaired(tmp_path: Path) -> None:
    """A rerun re-reads a done window whose file is gone: repaired 1, the same bytes back."""
    async with run_simulator(token=TOKEN, calls_per_day=30, rate_limit=0) as sim:
        await run(sim, tmp_path)
        good = partitions(tmp_path)
        (tmp_path / "recordings" / "date=2024-03-02" / "part-0.jsonl").unlink()
        again = await run(sim, tmp_path)
    assert again["recordings"].repaired == 1
    assert again["recordings"].written == 1
    assert again["recordings"].skipped == 2
    assert again["calls"].repaired == again["calls"].written == 0
    assert partitions(tmp_path) == good


@pytest.mark.asyncio
async def test_the_library_raises_typed_errors_before_any_request(tmp_path: Path) -> None:
    """Another format raises SettingsMismatchError; a partial rebuild IncompleteRebuildError."""
    async with run_simulator(token=TOKEN, calls_per_day=20, rate_limit=0) as sim:
        await run(sim, tmp_path)
        requests = len(sim.observed.report_requests())
        with pytest.raises(SettingsMismatchError, match="format was jsonl, now csv") as caught:
            await run(sim, tmp_path, "csv")
        assert [(c.name, c.pinned, c.requested) for c in caught.value.changes] == [
            ("format", "jsonl", "csv")
        ]
        async with VoiceClient(base_url=sim.base_url, token=TOKEN, timezone=TZ) as client:
            with Manifest(tmp_path / "_manifest.sqlite") as manifest:
                runner = Backfill(client, manifest, get_format("csv"), tmp_path, rebuild=True)
                with pytest.raises(IncompleteRebuildError, match="2024-03-03"):
                    await runner.run(plan("calls", "2024-03-01", "2024-03-02", TZ, now=NOW))
        assert len(sim.observed.report_requests()) == requests


@pytest.mark.asyncio
async def test_an_interrupted_rebuild_resumes_and_pins_only_once_whole(tmp_path: Path) -> None:
    """Windows failing mid-rebuild keep the old pins; the next --rebuild redoes only the rest."""
    async with run_simulator(token=TOKEN, calls_per_day=20, rate_limit=0, seed=11) as sim:
        await run(sim, tmp_path)
    async with run_simulator(
        token=TOKEN, calls_per_day=20, rate_limit=0, seed=11, faults=Faults(server_error=0.5)
    ) as flaky:
        cut = await run(flaky, tmp_path, "csv", retry=RetryPolicy(attempts=1), rebuild=True)
    assert any(s.failed for s in cut.values())
    assert any(s.written for s in cut.values())
    with Manifest(tmp_path / "_manifest.sqlite") as manifest:
        for report, summary in cut.items():
            assert manifest.settings(report)["format"] == ("csv" if summary.ok else "jsonl")
    async with run_simulator(token=TOKEN, calls_per_day=20, rate_limit=0, seed=11) as sim:
        with pytest.raises(SettingsMismatchError, match="format was jsonl, now csv"):
            await run(sim, tmp_path, "csv")
        done = await run(sim, tmp_path, "csv", rebuild=True)
    for report, summary in done.items():
        assert summary.ok
        assert summary.written == len(cut[report].failed)
    assert sorted(p.name for p in tmp_path.rglob("part-0.*")) == ["part-0.csv"] * 6
    with Manifest(tmp_path / "_manifest.sqlite") as manifest:
        assert {manifest.settings(r)["format"] for r in ("calls", "recordings")} == {"csv"}
        assert verify(tmp_path, manifest).ok


_V1_SCHEMA = """
CREATE TABLE windows (
    key TEXT PRIMARY KEY, report TEXT NOT NULL, start_at TEXT NOT NULL,
    end_at TEXT NOT NULL, state TEXT NOT NULL, records INTEGER NOT NULL DEFAULT 0,
    pages INTEGER NOT NULL DEFAULT 0, output TEXT, checksum TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, updated_at TEXT NOT NULL
)
"""


@pytest.mark.asyncio
async def test_an_older_manifest_is_migrated_and_checked_by_hash(tmp_path: Path) -> None:
    """A manifest without sizes is migrated; a rerun hashes its files, keeps good, redoes bad."""
    async with run_simulator(token=TOKEN, calls_per_day=20, rate_limit=0) as sim:
        await run(sim, tmp_path)
        good = partitions(tmp_path)
        with contextlib.closing(sqlite3.connect(tmp_path / "_manifest.sqlite")) as db:
            rows = db.execute(
                "SELECT key, report, start_at, end_at, state, records, pages, output, checksum, "
                "attempts, last_error, updated_at FROM windows"
            ).fetchall()
        (tmp_path / "_manifest.sqlite").unlink()
        with contextlib.closing(sqlite3.connect(tmp_path / "_manifest.sqlite")) as old:
            old.execute(_V1_SCHEMA)
            old.executemany(f"INSERT INTO windows VALUES ({', '.join('?' * 12)})", rows)
            old.commit()
        target = tmp_path / "calls" / "date=2024-03-01" / "part-0.jsonl"
        data = bytearray(target.read_bytes())
        data[-2] = ord("]") if data[-2] != ord("]") else ord("}")
        target.write_bytes(bytes(data))
        with Manifest(tmp_path / "_manifest.sqlite") as manifest:
            assert {e.size for e in manifest.entries()} == {None}
        again = await run(sim, tmp_path)
    assert again["calls"].repaired == 1
    assert again["recordings"].repaired == 0
    assert partitions(tmp_path) == good
    with Manifest(tmp_path / "_manifest.sqlite") as manifest:
        assert all(e.size == (tmp_path / str(e.output)).stat().st_size for e in manifest.entries())
        assert manifest.settings("calls")["format"] == "jsonl"
        assert verify(tmp_path, manifest).ok
    with contextlib.closing(sqlite3.connect(tmp_path / "_manifest.sqlite")) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (3,)
