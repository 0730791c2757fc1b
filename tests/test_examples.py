"""The examples run end to end, as a user runs them: in a subprocess, against the simulator.

Each example's ``--demo`` settings are module constants; the ground truth comes from
a :class:`~voiceapi_async.testing.Dataset` built with the same ones. The examples run
with ``-W error``, so a warning in them fails these tests as it would in pytest.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import importlib.util
import os
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from voiceapi_async.testing import DEFAULT_CALLS_PER_DAY, Dataset, run_simulator

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
RANGE = ("--from", "2024-03-01", "--to", "2024-03-02")
FIRST = dt.datetime(2024, 3, 1, 0, 0, 0)
LAST = dt.datetime(2024, 3, 2, 23, 59, 59)
TIMEOUT = 60


def load_example(name: str) -> ModuleType:
    """Import an example by path, for its constants (its ``main`` does not run)."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))  # as when the example runs as a script
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DEMO = load_example("demo_client")
STREAM_CALLS = load_example("stream_calls")
TO_SQLITE = load_example("batches_to_sqlite")


def example_command(name: str, *args: str) -> list[str]:
    return [sys.executable, "-W", "error", str(EXAMPLES / f"{name}.py"), *args]


def clean_env(**settings: str) -> dict[str, str]:
    """Return this environment without any VOICEAPI_* setting, plus ``settings``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("VOICEAPI_")}
    env.update(settings)
    return env


def run_example(name: str, *args: str, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        example_command(name, *args),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=ROOT,
        env=clean_env() if env is None else env,
        check=False,
    )


def demo_records(example: ModuleType, report: str) -> list[dict[str, Any]]:
    """Return the wire records the example's demo simulator serves for the range."""
    dataset = Dataset(
        DEMO.DEMO_SEED,
        timezone=DEMO.DEMO_TIMEZONE,
        calls_per_day=DEFAULT_CALLS_PER_DAY,
    )
    return dataset.between(report, FIRST, LAST)


def printed_ids(stdout: str) -> list[str]:
    """Return the ids of the per-call lines (the last word of each, before the summary)."""
    calls, _, _ = stdout.partition("\n\n")
    return [line.rsplit(maxsplit=1)[-1] for line in calls.splitlines()]


def summary_values(stdout: str) -> dict[str, str]:
    _, _, summary = stdout.partition("\n\n")
    pairs = (line.partition(": ") for line in summary.strip().splitlines())
    return {key: value for key, _, value in pairs}


def status_counts(text: str) -> collections.Counter[str]:
    return collections.Counter(
        {status: int(n) for status, n in (item.rsplit(" ", 1) for item in text.split(", "))}
    )


def test_stream_calls_demo_prints_every_call_once_and_a_true_summary() -> None:
    """`stream_calls.py --demo` prints each call of the range once, then exact totals."""
    result = run_example("stream_calls", "--demo", *RANGE)
    assert result.returncode == 0, result.stderr
    truth = demo_records(STREAM_CALLS, "calls")
    ids = printed_ids(result.stdout)
    assert len(ids) == len(set(ids))
    assert set(ids) == {record["id"] for record in truth}
    summary = summary_values(result.stdout)
    assert int(summary["calls"]) == len(truth)
    assert status_counts(summary["by status"]) == collections.Counter(r["status"] for r in truth)
    assert Decimal(summary["total charges"]) == sum(
        (Decimal(r["charges"]) for r in truth), Decimal(0)
    )
    assert "demo: simulator at http://127.0.0.1:" in result.stderr


@pytest.mark.asyncio
async def test_stream_calls_reads_its_settings_from_the_environment() -> None:
    """Without `--demo`, VOICEAPI_BASE_URL, VOICEAPI_TOKEN and VOICEAPI_TIMEZONE configure it."""
    async with run_simulator(
        seed=DEMO.DEMO_SEED,
        timezone=DEMO.DEMO_TIMEZONE,
        calls_per_day=DEFAULT_CALLS_PER_DAY,
        token="env-token-42",
    ) as simulator:
        env = clean_env(
            VOICEAPI_BASE_URL=simulator.base_url,
            VOICEAPI_TOKEN="env-token-42",
            VOICEAPI_TIMEZONE=DEMO.DEMO_TIMEZONE,
        )
        # The simulator runs on this loop: the example must not be waited for blockingly.
        process = await asyncio.create_subprocess_exec(
            *example_command("stream_calls", *RANGE),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=ROOT,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), TIMEOUT)
    assert process.returncode == 0, stderr.decode()
    summary = summary_values(stdout.decode())
    assert int(summary["calls"]) == len(demo_records(STREAM_CALLS, "calls"))
    assert simulator.observed.report_requests("calls")
    assert {request.auth for request in simulator.observed.requests} == {"bearer"}


def test_stream_calls_without_settings_exits_2_naming_the_variable() -> None:
    """With no VOICEAPI_BASE_URL and no `--demo`, it exits 2 and says what to set."""
    result = run_example("stream_calls", *RANGE)
    assert result.returncode == 2
    assert "VOICEAPI_BASE_URL" in result.stderr
    assert "--demo" in result.stderr
    assert result.stdout == ""


@pytest.fixture(scope="module")
def sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run `batches_to_sqlite.py --demo` once into a fresh database; return its path."""
    db = tmp_path_factory.mktemp("sqlite") / "voice.sqlite"
    result = run_example("batches_to_sqlite", "--demo", "--db", str(db), *RANGE)
    assert result.returncode == 0, result.stderr
    return db


def table_ids(db: Path, table: str) -> list[str]:
    with contextlib.closing(sqlite3.connect(db)) as connection:
        return [row[0] for row in connection.execute(f"SELECT id FROM {table}")]


@pytest.mark.parametrize("report", ["calls", "recordings"])
def test_batches_to_sqlite_writes_one_row_per_record_of_the_range(
    sqlite_db: Path, report: str
) -> None:
    """Each table holds exactly the simulator's records of the range, one row each."""
    truth = {record["id"] for record in demo_records(TO_SQLITE, report)}
    ids = table_ids(sqlite_db, report)
    assert len(ids) == len(truth)
    assert set(ids) == truth


def test_batches_to_sqlite_columns_are_typed(sqlite_db: Path) -> None:
    """Durations are integers, charges exact decimal text, timestamps ISO with the offset."""
    truth = {record["id"]: record for record in demo_records(TO_SQLITE, "calls")}
    with contextlib.closing(sqlite3.connect(sqlite_db)) as connection:
        rows = connection.execute(
            "SELECT id, typeof(duration_seconds), charges, end_at, extra FROM calls"
        ).fetchall()
    for record_id, duration_type, charges, end_at, extra in rows:
        assert duration_type == "integer"
        assert Decimal(charges) == Decimal(truth[record_id]["charges"])
        assert end_at.endswith("+05:30")
        assert end_at.replace("T", " ")[:19] == truth[record_id]["end_at"]
        assert extra.startswith("{")


def test_batches_to_sqlite_is_idempotent(sqlite_db: Path) -> None:
    """Running it again over the same range leaves the same rows, none doubled."""
    before = {table: sorted(table_ids(sqlite_db, table)) for table in ("calls", "recordings")}
    result = run_example("batches_to_sqlite", "--demo", "--db", str(sqlite_db), *RANGE)
    assert result.returncode == 0, result.stderr
    after = {table: sorted(table_ids(sqlite_db, table)) for table in ("calls", "recordings")}
    assert after == before
    assert f"calls: wrote {len(before['calls'])} records" in result.stdout
