import asyncio
import datetime as dt
import gzip
import hashlib
import json
import socket
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import pendulum
import pyarrow.parquet as pq
import pytest

from voiceapi_async import AuthenticationError, Report, RetryPolicy, VoiceClient
from voiceapi_async.backfill import (
    Backfill,
    Manifest,
    Summary,
    WindowState,
    lookback_start,
    plan,
)
from voiceapi_async.backfill._files import write_atomically
from voiceapi_async.export import get_format
from voiceapi_async.testing import Faults, VoiceSimulator, run_simulator

TZ = "Asia/Kolkata"
TOKEN = "backfill-token-1"
NOW = dt.datetime(2024, 3, 10, 15, 30, tzinfo=dt.UTC)  # 21:00 in Kolkata
FIXED_CLOCK = NOW.timestamp()
FAST = RetryPolicy(attempts=6, wait_initial=0.0, wait_max=0.01, wait_jitter=0.0)


def test_plan_stops_before_now_minus_the_safety_lag() -> None:
    """The last window is cut at now minus the lag and gets a sub-day key; later ones go."""
    windows = plan("calls", "2024-03-08", "2024-03-12", TZ, now=NOW)
    assert [w.key for w in windows] == [
        "calls/2024-03-08",
        "calls/2024-03-09",
        "calls/2024-03-10T00:00:00--2024-03-10T20:00:00",
    ]
    with pytest.raises(ValueError, match="nothing to do"):
        plan("calls", "2024-03-11", "2024-03-12", TZ, now=NOW)
    assert lookback_start(3, TZ, now=NOW) == dt.date(2024, 3, 8)
    with pytest.raises(ValueError, match="lookback days"):
        lookback_start(0, TZ)


def test_plan_refuses_ranges_it_cannot_represent_or_that_exceed_max_days() -> None:
    """Year 9999, more than max_days, a lag or lookback before year 1: ValueErrors."""
    assert len(plan("calls", "2024-01-01", "2024-01-31", TZ, now=NOW, max_days=31)) == 31
    with pytest.raises(ValueError, match="covers 32 days, more than the limit of 31 days"):
        plan("calls", "2024-01-01", "2024-02-01", TZ, now=NOW, max_days=31)
    with pytest.raises(ValueError, match="end='9999-12-31' is outside the dates"):
        plan("calls", "2024-01-01", "9999-12-31", TZ, now=NOW)
    with pytest.raises(ValueError, match=r"safety lag .* reaches before the year 1"):
        plan("calls", "2024-01-01", "2024-01-02", TZ, now=NOW, safety_lag=dt.timedelta.max)
    with pytest.raises(ValueError, match="lookback of 999,999,999 days reaches before the year 1"):
        lookback_start(999_999_999, TZ, now=NOW)
    with pytest.raises(ValueError, match="reaches before the year 1"):
        lookback_start(10**30, TZ, now=NOW)


def test_manifest_keeps_states_across_reopening(tmp_path: Path) -> None:
    """Window states, counts, attempts and errors survive closing the database."""
    windows = plan("calls", "2024-03-01", "2024-03-03", TZ, now=NOW)
    with Manifest(tmp_path / "m.sqlite") as manifest:
        manifest.register(windows)
        manifest.register(windows)
        manifest.start("calls/2024-03-01")
        manifest.done("calls/2024-03-01", records=5, pages=1, output="x", checksum="ab")
        manifest.start("calls/2024-03-02")
        manifest.failed("calls/2024-03-02", "boom")
        manifest.start("calls/2024-03-03")
        manifest.reset("calls/2024-03-03")
    with Manifest(tmp_path / "m.sqlite") as manifest:
        entries = {e.key: e for e in manifest.entries()}
    assert len(entries) == 3
    assert entries["calls/2024-03-01"].state is WindowState.DONE
    assert entries["calls/2024-03-01"].records == 5
    assert entries["calls/2024-03-02"].state is WindowState.FAILED
    assert entries["calls/2024-03-02"].last_error == "boom"
    assert entries["calls/2024-03-03"].state is WindowState.PENDING
    assert entries["calls/2024-03-03"].attempts == 1


async def run_backfill(
    sim: VoiceSimulator,
    out: Path,
    fmt: str,
    *,
    reports: tuple[str, ...] = ("calls", "recordings"),
    compress: bool = False,
    **settings: Any,
) -> dict[str, Summary]:
    summaries = {}
    options: dict[str, Any] = {"retry": FAST, "rate_limit": 0}
    options.update(settings)
    async with VoiceClient(base_url=sim.base_url, token=TOKEN, timezone=TZ, **options) as client:
        with Manifest(out / "_manifest.sqlite") as manifest:
            for report in reports:
                windows = plan(report, "2024-03-01", "2024-03-04", TZ, now=NOW)
                runner = Backfill(
                    client, manifest, get_format(fmt, compress=compress, timezone=TZ), out
                )
                summaries[report] = await runner.run(windows)
    return summaries


def partition_hashes(out: Path) -> dict[str, str]:
    return {
        str(path.relative_to(out)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(out.rglob("part-0.*"))
    }


RANGE = (dt.datetime(2024, 3, 1), dt.datetime(2024, 3, 4, 23, 59, 59))


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("fmt", "compress"), [("jsonl", False), ("jsonl", True), ("csv", False), ("parquet", False)]
)
async def test_backfill_writes_ground_truth_partitions(
    tmp_path: Path, fmt: str, compress: bool
) -> None:
    """Every format: one partition a day, ids equal to the ground truth, typed values intact."""
    async with run_simulator(
        token=TOKEN, calls_per_day=80, rate_limit=0, faults=Faults.demo()
    ) as sim:
        summaries = await run_backfill(sim, tmp_path, fmt, compress=compress)
    assert all(s.ok for s in summaries.values())
    for report in ("calls", "recordings"):
        files = sorted((tmp_path / report).glob("date=*/part-0.*"))
        assert [f.parent.name for f in files] == [f"date=2024-03-0{d}" for d in (1, 2, 3, 4)]
        rows = [row for f in files for row in read_rows(f, fmt)]
        ids = [row["id"] for row in rows]
        assert len(ids) == len(set(ids))
        assert set(ids) == sim.ids_between(report, *RANGE)
    call = next(
        row for f in sorted((tmp_path / "calls").rglob("part-0.*")) for row in read_rows(f, fmt)
    )
    if fmt == "parquet":
        table = pq.read_table(next((tmp_path / "calls").rglob("part-0.parquet")))
        assert table.schema.field("end_at").type.tz == "Asia/Kolkata"
        assert str(table.schema.field("charges").type) == "decimal128(14, 4)"
        assert isinstance(call["charges"], Decimal)
        assert call["end_at"].utcoffset() == dt.timedelta(hours=5, minutes=30)
    else:
        assert str(Decimal(call["charges"])) == call["charges"]
        assert dt.datetime.fromisoformat(call["end_at"]).utcoffset() == dt.timedelta(
            hours=5, minutes=30
        )


def read_rows(path: Path, fmt: str) -> list[dict[str, Any]]:
    if fmt == "parquet":
        return pq.read_table(path).to_pylist()  # type: ignore[no-any-return]
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    if fmt == "jsonl":
        return [json.loads(line) for line in data.splitlines()]
    import csv
    import io

    return list(csv.DictReader(io.StringIO(data.decode())))


@pytest.mark.asyncio
async def test_rerunning_a_finished_backfill_changes_no_byte(tmp_path: Path) -> None:
    """A second run skips every done window and leaves every file as it was."""
    async with run_simulator(token=TOKEN, calls_per_day=50, rate_limit=0) as sim:
        await run_backfill(sim, tmp_path, "parquet")
        before = partition_hashes(tmp_path)
        mtimes = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("part-0.*")}
        again = await run_backfill(sim, tmp_path, "parquet")
    assert all(s.written == 0 and s.skipped == 4 for s in again.values())
    assert partition_hashes(tmp_path) == before
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("part-0.*")} == mtimes


@pytest.mark.asyncio
async def test_the_same_data_gives_the_same_bytes(tmp_path: Path) -> None:
    """Runs with different page sizes and concurrency write byte-identical partitions."""
    # Presigned audio URLs carry the time they were minted: fix the server's clock.
    async with run_simulator(
        token=TOKEN, calls_per_day=50, rate_limit=0, seed=5, clock=lambda: FIXED_CLOCK
    ) as sim:
        await run_backfill(sim, tmp_path / "a", "jsonl", compress=True)
        await run_backfill(sim, tmp_path / "b", "jsonl", compress=True, per_page=7, max_in_flight=2)
    assert partition_hashes(tmp_path / "a") == partition_hashes(tmp_path / "b")


@pytest.mark.asyncio
async def test_failed_windows_are_recorded_and_retried_on_request(tmp_path: Path) -> None:
    """A failing window does not stop the run; --retry-failed later completes it."""
    faults = Faults(server_error=0.5)
    async with run_simulator(
        token=TOKEN, calls_per_day=40, rate_limit=0, faults=faults, seed=11
    ) as sim:
        first = await run_backfill(
            sim, tmp_path, "csv", reports=("calls",), retry=RetryPolicy(attempts=1)
        )
        assert first["calls"].failed
        assert first["calls"].written + len(first["calls"].failed) == 4
        rerun = await run_backfill(
            sim, tmp_path, "csv", reports=("calls",), retry=RetryPolicy(attempts=1, wait_initial=0)
        )
        assert rerun["calls"].written == 0
        assert rerun["calls"].failed == first["calls"].failed
    async with (
        run_simulator(token=TOKEN, calls_per_day=40, rate_limit=0, seed=11) as clean,
        VoiceClient(base_url=clean.base_url, token=TOKEN, timezone=TZ, rate_limit=0) as client,
    ):
        with Manifest(tmp_path / "_manifest.sqlite") as manifest:
            windows = plan("calls", "2024-03-01", "2024-03-04", TZ, now=NOW)
            runner = Backfill(client, manifest, get_format("csv"), tmp_path, retry_failed=True)
            retried = await runner.run(windows)
            states = {e.key: e.state for e in manifest.entries()}
    assert retried.ok
    assert retried.written == len(first["calls"].failed)
    assert set(states.values()) == {WindowState.DONE}


@pytest.mark.asyncio
async def test_a_bad_token_stops_the_run_at_once(tmp_path: Path) -> None:
    """Authentication failures are fatal: raised, not recorded window by window."""
    async with (
        run_simulator(token=TOKEN, rate_limit=0) as sim,
        VoiceClient(base_url=sim.base_url, token="nope", timezone=TZ, rate_limit=0) as client,
    ):
        with Manifest(tmp_path / "_manifest.sqlite") as manifest:
            runner = Backfill(client, manifest, get_format("jsonl"), tmp_path)
            with pytest.raises(AuthenticationError):
                await runner.run(plan("calls", "2024-03-01", "2024-03-04", TZ, now=NOW))
    assert not list(tmp_path.rglob("part-0.*"))


@pytest.mark.asyncio
async def test_an_interrupted_run_resumes_to_the_same_output(tmp_path: Path) -> None:
    """Cancelling mid-run leaves no window 'running' and the rerun matches a clean run."""
    slow = Faults(latency_ms=30, latency_spread=0.01)
    async with run_simulator(
        token=TOKEN, calls_per_day=60, rate_limit=0, faults=slow, clock=lambda: FIXED_CLOCK
    ) as sim:
        task = asyncio.create_task(run_backfill(sim, tmp_path / "cut", "parquet", per_page=10))
        while not list((tmp_path / "cut").rglob("part-0.*")):  # noqa: ASYNC110 - polls a directory
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with Manifest(tmp_path / "cut" / "_manifest.sqlite") as manifest:
            states = {e.state for e in manifest.entries()}
        assert WindowState.RUNNING not in states
        assert WindowState.PENDING in states
        await run_backfill(sim, tmp_path / "cut", "parquet", per_page=10)
        await run_backfill(sim, tmp_path / "whole", "parquet")
    assert partition_hashes(tmp_path / "cut") == partition_hashes(tmp_path / "whole")
    assert list((tmp_path / "cut" / "_tmp").iterdir()) == []


def test_report_enum_round_trip() -> None:
    """Report names are what the CLI and manifest store."""
    assert [str(r) for r in Report] == ["calls", "recordings"]
    assert pendulum.timezone(TZ).name == TZ


def test_a_failed_partition_write_leaves_no_file_and_keeps_the_old_one(tmp_path: Path) -> None:
    """A writer that fails half-way leaves the old partition as it was and no temporary file."""
    relative = Path("calls/date=2024-03-05/part-0.csv")
    checksum = write_atomically(tmp_path, relative, lambda file: file.write(b"old\n"))
    assert checksum == hashlib.sha256(b"old\n").hexdigest()

    def fail_half_way(file: IO[bytes]) -> None:
        file.write(b"new, but only half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(tmp_path, relative, fail_half_way)
    assert (tmp_path / relative).read_bytes() == b"old\n"
    assert list((tmp_path / "_tmp").iterdir()) == []


@pytest.mark.asyncio
@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
async def test_two_independent_recordings_backfills_write_identical_secret_free_files(
    tmp_path: Path, fmt: str
) -> None:
    """Audio links signed two hours apart: the partitions are byte-identical and unsigned."""
    with socket.socket() as probe:  # one port for both servers: the storage host is theirs
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for run, clock in (("a", FIXED_CLOCK), ("b", FIXED_CLOCK + 7200)):
        async with run_simulator(
            token=TOKEN, calls_per_day=40, rate_limit=0, seed=5, port=port, clock=lambda c=clock: c
        ) as sim:
            summaries = await run_backfill(sim, tmp_path / run, fmt, reports=("recordings",))
        assert summaries["recordings"].ok
    first, second = partition_hashes(tmp_path / "a"), partition_hashes(tmp_path / "b")
    assert first == second
    assert len(first) == 4
    for path in (tmp_path / "a").rglob("part-0.*"):
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        assert b"X-Amz-" not in data or fmt == "parquet"  # parquet pages are compressed
    if fmt == "parquet":
        table = pq.read_table(tmp_path / "a" / "recordings")
        assert not any("?" in (url or "") for url in table.column("audio").to_pylist())
