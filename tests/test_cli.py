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

from voiceapi_async import Report
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
    requests = len(sim.observed.report_requests())
    assert f"requests: {requests:,} (" in result.stdout
    assert "per 1,000 records); page size: " in result.stdout
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
    again = voiceapi(*backfill_args(tmp_path, "jsonl"), "--no-bulk", env=settings(sim))
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
    # Small pages: a day a request window, about 8 pages each, so a run takes long
    # enough to be stopped at many different moments.
    args = ["--from", "2024-03-01", "--to", "2024-03-21", "--concurrency", "2", "--per-page", "5"]
    cut_short = 0
    with serve_in_thread(config) as slow:
        env = settings(slow)
        reference = tmp_path / "reference"
        whole = voiceapi(*backfill_args(reference, "parquet"), *args, env=env)
        assert whole.returncode == 0, whole.stderr
        out = tmp_path / "interrupted"
        for _ in range(3):
            # Stopped once the simulator has seen a random number more requests.
            moment = len(slow.observed.requests) + rng.randint(10, 120)
            process = start(*backfill_args(out, "parquet"), *args, env=env)
            deadline = time.monotonic() + 60
            while len(slow.observed.requests) < moment and process.poll() is None:
                assert time.monotonic() < deadline, "the backfill made no requests"
                time.sleep(0.005)
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
        (["--from", "2024-03-05", "--to", "2024-03-01"], {}, 2, "--to 2024-03-01 is before --from"),
        (["--format", "xml"], {}, 2, "'xml' is not one of"),
        ([], {"VOICEAPI_TOKEN": ""}, 2, "no token: set VOICEAPI_TOKEN"),
        ([], {"VOICEAPI_BASE_URL": "http://127.0.0.1:9/api/v2/"}, 4, "cannot reach the API"),
        ([], {"VOICEAPI_TOKEN": "wrong"}, 3, "authentication failed: check VOICEAPI_TOKEN"),
        (["--to", "9999-12-31"], {}, 2, "the supported range is 0001-01-02 to 9999-12-30"),
        (["--from", "0001-01-01"], {}, 2, "--from '0001-01-01' is outside the supported dates"),
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
        (["--from", "2024-03-01", "--to", "9999-12-31"], {}, "--to '9999-12-31' is outside"),
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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--from", "2024-13-01", "--to", "2024-03-01"],
            "--from '2024-13-01' is not a date (YYYY-MM-DD)",
        ),
        (["--from", "2024-03-01", "--to", "March"], "--to 'March' is not a date (YYYY-MM-DD)"),
        (
            ["--from", "2024-03-05T10:00", "--to", "2024-03-06"],
            "--from '2024-03-05T10:00' has no UTC offset, which is ambiguous: add one, like "
            "2024-03-05T10:00:00+05:30, or give a date (2024-03-05) for the whole day",
        ),
        (["--from", "2024-03-05", "--to", "2024-03-01"], "--to 2024-03-01 is before --from"),
        (
            ["--from", "2024-03-05T10:00+05:30", "--to", "2024-03-05T09:00+05:30"],
            "--to (2024-03-05 09:00:00) is before --from (2024-03-05 10:00:00) in Asia/Kolkata",
        ),
        (
            ["--from", "2024-03-01", "--to", "2024-03-01", "--timezone", "Mars/Olympus_Mons"],
            "--timezone 'Mars/Olympus_Mons' is not a time zone",
        ),
        (
            ["--from", "2024-03-01", "--to", "2024-03-01", "--base-url", "ftp://h/api/v2/"],
            "--base-url must start with http:// or https://",
        ),
    ],
)
def test_messages_name_the_commands_own_flags(
    sim: VoiceSimulator, args: list[str], message: str
) -> None:
    """Bad dates, zones and URLs are usage errors naming the flag, never library arguments."""
    result = voiceapi("calls", *args, env=settings(sim))
    assert result.returncode == 2, result.stderr
    assert message in " ".join(result.stderr.split())
    for library_word in ("start=", "end=", "base_url", "pendulum", "Traceback"):
        assert library_word not in result.stderr
    assert len(sim.observed.report_requests()) == 0


@pytest.mark.parametrize("command", ["calls", "recordings", "backfill"])
def test_the_time_zone_is_required_and_the_message_says_where_to_find_it(
    sim: VoiceSimulator, tmp_path: Path, command: str
) -> None:
    """Without --timezone or VOICEAPI_TIMEZONE: exit 2, naming the dashboard and both ways."""
    env = {key: value for key, value in settings(sim).items() if key != "VOICEAPI_TIMEZONE"}
    args = ["--from", "2024-03-01", "--to", "2024-03-01"]
    if command == "backfill":
        args = ["calls", *args, "--out", str(tmp_path)]
    result = voiceapi(command, *args, env=env)
    assert result.returncode == 2, result.stderr
    message = " ".join(result.stderr.split())
    assert "no time zone: --timezone (or VOICEAPI_TIMEZONE) is required, with no default" in (
        message
    )
    assert "the account's settings in the provider's dashboard" in message
    assert len(sim.observed.report_requests()) == 0
    assert not list(tmp_path.iterdir())


def test_verify_without_a_sample_needs_no_time_zone(sim: VoiceSimulator, tmp_path: Path) -> None:
    """Checking files against their manifest reads no date: no --timezone needed."""
    assert voiceapi(*backfill_args(tmp_path, "jsonl"), env=settings(sim)).returncode == 0
    result = voiceapi("verify", "--out", str(tmp_path), env={})
    assert result.returncode == 0, result.stderr
    assert "every partition holds" in result.stderr


def summary_records(stdout: str) -> dict[str, int]:
    """Return the records column of each report's row of the printed summary table."""
    records = {}
    for line in stdout.splitlines():
        cells = [cell.strip() for cell in line.strip("│┃ ").split("│")]
        if cells[0] in ("calls", "recordings"):
            records[cells[0]] = int(cells[6].replace(",", ""))
    return records


def duckdb_counts(command: str) -> dict[str, int]:
    """Run a printed DuckDB line in a shell (with this interpreter first on the PATH)."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    counted = subprocess.run(
        command,
        shell=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": path},
        check=False,
    )
    assert counted.returncode == 0, counted.stderr
    rows = (line.strip("│ ").split("│") for line in counted.stdout.splitlines())
    return {cells[0].strip(): int(cells[1]) for cells in rows if cells[-1].strip().isdigit()}


def test_the_demo_runs_its_simulator_apart_and_prints_a_duckdb_line_that_counts_its_files(
    tmp_path: Path,
) -> None:
    """A small --demo: the simulator in a process of its own, stopped at the end.

    The printed DuckDB line, run by a shell, gives the summary's counts.
    """
    out = tmp_path / "demo's $out"  # the line quotes what a shell or SQL would misread
    args = ["backfill", "all", "--demo", "--from", "2024-03-01", "--to", "2024-03-02"]
    result = voiceapi(*args, "--format", "parquet", "--out", str(out), env={})
    assert result.returncode == 0, result.stderr
    stderr = " ".join(result.stderr.split())
    assert "the simulated account's time zone is Asia/Kolkata (the simulator's" in stderr
    simulator_pid = int(stderr.split("(process ")[1].split(")")[0])
    assert not Path(f"/proc/{simulator_pid}").exists()  # stopped and reaped
    lines = result.stdout.splitlines()
    assert lines[-6] == f"files in {out}/:"
    assert lines[-5].split() == ["calls/date=YYYY-MM-DD/part-0.parquet", "2", "days"]
    assert lines[-4].split() == ["recordings/date=YYYY-MM-DD/part-0.parquet", "2", "days"]
    assert lines[-2] == "count their records with DuckDB:"
    command = lines[-1].strip()
    here = Path(sys.executable)  # the command's too: by its path when under the cwd
    shown = str(here.relative_to(Path.cwd())) if here.is_relative_to(Path.cwd()) else "python"
    assert command.startswith(f"{shown} -c ")  # .venv/bin/python, .venv-3.13/bin/python, ...
    expected = summary_records(result.stdout)
    assert duckdb_counts(command) == expected
    assert expected["calls"] > 100
    assert expected["recordings"] > 0


@pytest.mark.parametrize(("fmt", "gzip"), [("jsonl", True), ("csv", False)])
def test_the_duckdb_line_reads_every_format(
    sim: VoiceSimulator, tmp_path: Path, fmt: str, gzip: bool
) -> None:
    """JSON Lines (gzipped) and CSV partitions are counted by the printed line too."""
    extra = ["--gzip"] if gzip else []
    result = voiceapi(*backfill_args(tmp_path, fmt, *extra, what="calls"), env=settings(sim))
    assert result.returncode == 0, result.stderr
    assert f"part-0.{fmt}{'.gz' if gzip else ''}" in result.stdout
    command = result.stdout.splitlines()[-1].strip()
    assert duckdb_counts(command) == {"calls": len(sim.ids_between("calls", *RANGE))}


def test_serve_fake_is_the_simulators_click_command() -> None:
    """`voiceapi serve-fake` has the simulator's options and click's messages under its name."""
    helped = voiceapi("serve-fake", "--help")
    assert helped.returncode == 0
    assert helped.stdout.startswith("Usage: python -m voiceapi_async serve-fake [OPTIONS]")
    for flag in ("--port", "--shape", "--calls-per-day N", "--faults", "--storage-stall"):
        assert flag in helped.stdout
    bad = voiceapi("serve-fake", "--shape", "d")
    assert bad.returncode == 2
    assert "Invalid value for '--shape': 'd' is not one of 'a', 'b', 'c'" in bad.stderr


@pytest.mark.asyncio
async def test_a_demo_simulator_that_does_not_start_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The simulator's process ends without an address: a _DemoError with its last words."""
    from voiceapi_async import cli

    monkeypatch.setattr(sys, "executable", "/bin/sh")  # sh -m ...: an illegal option
    connection = cli.Connection(
        base_url=None,
        token=None,
        timezone="UTC",
        demo=True,
        rate_limit=None,
        max_attempts=1,
        max_days=7,
    )
    with pytest.raises(cli._DemoError, match=r"the demo's simulator did not start \(-m "):
        async with cli._demo_simulator(connection):
            pass  # pragma: no cover - never reached


def test_the_duckdb_line_runs_this_interpreter_by_its_path_under_the_working_directory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under the working directory (make demo's .venv), the line names the interpreter's path."""
    from voiceapi_async import cli

    interpreter = Path(sys.executable)
    monkeypatch.chdir(interpreter.parents[2])
    expected = str(interpreter.relative_to(interpreter.parents[2]))
    line = cli.duckdb_command(Path("out"), "csv", "csv", [Report.CALLS])
    assert line.startswith(f"{expected} -c ")
    assert "read_csv('out/calls/*/*.csv')" in line
    assert "ORDER BY" not in line


def test_the_simulators_command_without_click_says_which_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without click, `python -m voiceapi_async.testing` exits 2 naming the cli extra."""
    from voiceapi_async.testing import _cli

    monkeypatch.setitem(sys.modules, "voiceapi_async.testing._command", None)
    assert _cli.main(["serve"]) == 2
    assert _cli.serve_main([]) == 2
    err = capsys.readouterr().err
    assert err.count("pip install 'voiceapi-async[cli]'") == 2
