import datetime as dt
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from voiceapi_async.backfill import Manifest, WindowState
from voiceapi_async.testing import Faults, SimulatorConfig, VoiceSimulator
from voiceapi_async.testing._plugin import serve_in_thread

TOKEN = "cli-token-42"
TZ = "Asia/Kolkata"
FIXED_CLOCK = dt.datetime(2024, 4, 1, tzinfo=dt.UTC).timestamp()
RANGE = (dt.datetime(2024, 3, 1), dt.datetime(2024, 3, 3, 23, 59, 59))


def voiceapi(
    *args: str, env: dict[str, str] | None = None, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Run the real command in a subprocess, with no VOICEAPI_* settings but those given."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VOICEAPI_")}
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "voiceapi_async", *args],
        capture_output=True,
        text=True,
        env=clean,
        timeout=120,
        check=False,
        **kwargs,
    )


def start(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VOICEAPI_")}
    clean.update(env)
    return subprocess.Popen(
        [sys.executable, "-m", "voiceapi_async", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean,
    )


@pytest.fixture
def sim() -> Iterator[VoiceSimulator]:
    config = SimulatorConfig(
        token=TOKEN,
        calls_per_day=60,
        rate_limit=0,
        faults=Faults(server_error=0.05, reset=0.02, truncated=0.02),
        clock=lambda: FIXED_CLOCK,
    )
    with serve_in_thread(config) as simulator:
        yield simulator


def settings(sim: VoiceSimulator) -> dict[str, str]:
    return {"VOICEAPI_BASE_URL": sim.base_url, "VOICEAPI_TOKEN": TOKEN, "VOICEAPI_TIMEZONE": TZ}


def backfill_args(out: Path, fmt: str, *extra: str, what: str = "all") -> list[str]:
    """Return the arguments of a backfill of 2024-03-01..03 into ``out``, unthrottled."""
    return [
        "backfill",
        what,
        "--from",
        "2024-03-01",
        "--to",
        "2024-03-03",
        "--out",
        str(out),
        "--format",
        fmt,
        "--rate-limit",
        "0",
        *extra,
    ]


def partition_hashes(out: Path) -> dict[str, str]:
    return {
        str(path.relative_to(out)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(out.rglob("part-0.*"))
    }


def exported_ids(out: Path, report: str, fmt: str) -> list[str]:
    ids: list[str] = []
    for path in sorted((out / report).rglob("part-0.*")):
        if fmt == "parquet":
            ids += pq.read_table(path, columns=["id"]).column("id").to_pylist()
        elif fmt == "csv":
            lines = path.read_text().splitlines()[1:]
            ids += [line.split(",", 1)[0] for line in lines]
        else:
            ids += [json.loads(line)["id"] for line in path.read_text().splitlines()]
    return ids


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_backfill_command_exports_the_ground_truth(
    sim: VoiceSimulator, tmp_path: Path, fmt: str
) -> None:
    """The real command, every format: ids equal the simulator's truth, no duplicates."""
    result = voiceapi(*backfill_args(tmp_path, fmt), env=settings(sim))
    assert result.returncode == 0, result.stderr
    assert "backfill summary" in result.stdout
    for report in ("calls", "recordings"):
        ids = exported_ids(tmp_path, report, fmt)
        assert len(ids) == len(set(ids))
        assert set(ids) == sim.ids_between(report, *RANGE)
    if fmt == "parquet":
        table = pq.read_table(next((tmp_path / "calls").rglob("part-0.parquet")))
        assert table.schema.field("start_at").type.tz == TZ
        assert str(table.schema.field("charges").type) == "decimal128(14, 4)"


def test_rerunning_a_finished_backfill_changes_nothing(sim: VoiceSimulator, tmp_path: Path) -> None:
    """A second run of the same command skips every window and rewrites no byte."""
    assert voiceapi(*backfill_args(tmp_path, "jsonl"), env=settings(sim)).returncode == 0
    before = partition_hashes(tmp_path)
    again = voiceapi(*backfill_args(tmp_path, "jsonl"), env=settings(sim))
    assert again.returncode == 0, again.stderr
    assert "already done: skipped" in again.stderr
    assert partition_hashes(tmp_path) == before


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_runs_resume_to_identical_output(tmp_path: Path, stop: signal.Signals) -> None:
    """Killed or interrupted at random moments and rerun, the export equals an uninterrupted one."""
    config = SimulatorConfig(
        token=TOKEN,
        calls_per_day=40,
        rate_limit=0,
        faults=Faults(latency_ms=150, latency_spread=0.2),
        clock=lambda: FIXED_CLOCK,
    )
    rng = random.Random(f"crash-{stop}")
    args = ["--from", "2024-03-01", "--to", "2024-03-21", "--concurrency", "2"]
    cut_short = 0
    with serve_in_thread(config) as slow:
        env = settings(slow)
        reference = tmp_path / "reference"
        whole = voiceapi(*backfill_args(reference, "parquet"), *args, env=env)
        assert whole.returncode == 0, whole.stderr
        out = tmp_path / "interrupted"
        for _ in range(3):
            process = start(*backfill_args(out, "parquet"), *args, env=env)
            time.sleep(rng.uniform(1.0, 1.8))
            process.send_signal(stop)
            _, stderr = process.communicate(timeout=60)
            if stop == signal.SIGINT and process.returncode != 0:
                assert process.returncode == 130, stderr
                assert "run the same command again to resume" in stderr
                assert "Traceback" not in stderr
            if (out / "_manifest.sqlite").exists():
                with Manifest(out / "_manifest.sqlite") as manifest:
                    states = [e.state for e in manifest.entries()]
                cut_short += states.count(WindowState.DONE) < 42
                if stop == signal.SIGINT:
                    assert WindowState.RUNNING not in states
        final = voiceapi(*backfill_args(out, "parquet"), *args, env=env)
    assert final.returncode == 0, final.stderr
    assert cut_short >= 2
    assert partition_hashes(out) == partition_hashes(reference)
    assert partition_hashes(out)


@pytest.mark.parametrize(
    ("args", "env", "code", "message"),
    [
        (["--from", "2024-03-05", "--to", "2024-03-01"], {}, 2, "before start"),
        (["--format", "xml"], {}, 2, "'xml' is not one of"),
        ([], {"VOICEAPI_TOKEN": ""}, 2, "no token: set VOICEAPI_TOKEN"),
        ([], {"VOICEAPI_BASE_URL": "http://127.0.0.1:9/api/v2/"}, 4, "cannot reach the API"),
        ([], {"VOICEAPI_TOKEN": "wrong"}, 3, "authentication failed: check VOICEAPI_TOKEN"),
        (["--to", "9999-12-31"], {}, 2, "the supported range is 0001-01-02 to 9999-12-30"),
        (["--from", "0001-01-01"], {}, 2, "start='0001-01-01' is outside the dates"),
        (["--from", "0002-01-01", "--to", "9998-12-31"], {}, 2, "(--max-days, VOICEAPI_MAX_DAYS)"),
        ([], {"VOICEAPI_MAX_DAYS": "1"}, 2, "covers 2 days, more than the limit of 1 days"),
        (["--max-days", "0"], {}, 2, "0 is not in the range x>=1"),
        (["--lookback-days", "999999999"], {}, 2, "reaches before the year 1"),
        (["--safety-lag-minutes", "10" * 8], {}, 2, "is too large"),
        ([], {"VOICEAPI_TOKEN": TOKEN + "\r\n"}, 2, "the token contains whitespace (U+000D)"),
        (
            ["--base-url", "http://127.0.0.1:9/api/v2/?access_token=" + TOKEN],
            {},
            2,
            "has a query string",
        ),
        (["--base-url", "ftp://127.0.0.1:9/api/v2/"], {}, 2, "must start with http://"),
    ],
)
def test_bad_arguments_get_a_message_and_their_exit_code(
    sim: VoiceSimulator,
    tmp_path: Path,
    args: list[str],
    env: dict[str, str],
    code: int,
    message: str,
) -> None:
    """Bad range, format, token, host: a sentence, a distinct exit code, nothing half-written."""
    base = [
        "backfill",
        "calls",
        "--from",
        "2024-03-01",
        "--to",
        "2024-03-02",
        "--out",
        str(tmp_path / "out"),
    ]
    result = voiceapi(*base, *args, "--max-attempts", "1", env={**settings(sim), **env})
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert TOKEN not in result.stderr
    assert not list(tmp_path.rglob("part-0.*"))
    assert not list(tmp_path.rglob("_tmp/*"))


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_streaming_commands_write_records_to_stdout(sim: VoiceSimulator, fmt: str) -> None:
    """`voiceapi calls` streams every record of the range to stdout."""
    result = voiceapi(
        "calls", "--from", "2024-03-01", "--to", "2024-03-03", "--format", fmt, env=settings(sim)
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    if fmt == "csv":
        assert lines[0].startswith("id,call_from,call_to")
        ids = [line.split(",", 1)[0] for line in lines[1:]]
    else:
        ids = [json.loads(line)["id"] for line in lines]
    assert set(ids) == sim.ids_between("calls", *RANGE)
    assert len(ids) == len(set(ids))


def test_stdout_holds_each_days_records_in_partition_order() -> None:
    """Days of several pages, more than 500 records: ordered by end_at then id, as partitions."""
    config = SimulatorConfig(token=TOKEN, calls_per_day=250, rate_limit=0, seed=3)
    with serve_in_thread(config) as busy:
        args = ("calls", "--from", "2024-03-01", "--to", "2024-03-03")
        result = voiceapi(*args, env=settings(busy))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    keys = [(row["end_at"], row["id"]) for row in rows]
    assert len(keys) > 500
    assert keys == sorted(keys)


def test_demo_recordings_stream_and_help() -> None:
    """--demo needs no settings; --help lists the commands."""
    result = voiceapi("recordings", "--demo", "--from", "2024-03-01", "--to", "2024-03-01")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) > 10
    helped = voiceapi("--help")
    for command in ("backfill", "calls", "recordings", "serve-fake"):
        assert command in helped.stdout


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_failed_stream_writes_nothing_to_stdout(sim: VoiceSimulator, fmt: str) -> None:
    """A stream that fails before its first record leaves stdout empty, not a bare CSV header."""
    env = {**settings(sim), "VOICEAPI_TOKEN": "wrong"}
    args = ("calls", "--from", "2024-03-01", "--to", "2024-03-01", "--format", fmt)
    result = voiceapi(*args, "--max-attempts", "1", env=env)
    assert result.returncode == 3, result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--from", "2024-03-01", "--to", "9999-12-31"], {}, "end='9999-12-31' is outside"),
        (["--from", "0002-01-01", "--to", "9998-12-31"], {}, "covers 3,651,329 days"),
        (["--from", "2024-03-01", "--to", "2024-03-31"], {"VOICEAPI_MAX_DAYS": "7"}, "(--max-days"),
        (["--from", "2024-03-01", "--to", "2024-03-01"], {"VOICEAPI_TOKEN": "a b"}, "U+0020"),
        (
            ["--from", "2024-03-01", "--to", "2024-03-01"],
            {"VOICEAPI_BASE_URL": "http://127.0.0.1:9/api/v2/#frag"},
            "or a fragment",
        ),
    ],
)
def test_streaming_commands_refuse_bad_input_as_usage_errors(
    sim: VoiceSimulator, args: list[str], env: dict[str, str], message: str
) -> None:
    """`voiceapi calls` with an unplannable day, a too long range, a bad token or URL: exit 2."""
    result = voiceapi("calls", *args, env={**settings(sim), **env})
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert len(sim.observed.report_requests()) == 0
