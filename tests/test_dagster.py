"""The Dagster assets: the command's files, their metadata, the schedule, secrets and 429s.

Runs go through Dagster itself (``dagster.materialize`` in process, ``execute_job``
with the multiprocess executor) against the simulator served from a thread.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import math
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import dagster as dg
import pyarrow.parquet as pq
import pytest

from tests.test_cli import partition_hashes, voiceapi
from voiceapi_async import RetryPolicy
from voiceapi_async.backfill import Manifest, OutputLock, OutputLockedError
from voiceapi_async.contrib.dagster import Account, voiceapi_definitions
from voiceapi_async.testing import Faults, SimulatorConfig, VoiceSimulator
from voiceapi_async.testing._plugin import serve_in_thread

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "dagster-Tok-7f3a91c2e5"
WRONG_TOKEN = "wrong-Tok-55d0b8e413"
TZ = "Asia/Kolkata"
DAYS = ("2024-03-01", "2024-03-02", "2024-03-03")
FAST = RetryPolicy(attempts=3, wait_initial=0.0, wait_max=0.01, wait_jitter=0.0)
QUICK = {"rate_limit": 0, "retry": FAST}
"""Client settings for tests that are not about the rate limit."""


@pytest.fixture
def sim() -> Iterator[VoiceSimulator]:
    config = SimulatorConfig(token=TOKEN, calls_per_day=40, rate_limit=0, audio_size=(300, 900))
    with serve_in_thread(config) as simulator:
        yield simulator


@pytest.fixture
def token_env(monkeypatch: pytest.MonkeyPatch) -> str:
    """The variable the accounts read their token from, set to the simulator's token."""
    monkeypatch.setenv("VOICEAPI_TOKEN_ACME", TOKEN)
    for name in list(os.environ):
        if name.startswith("VOICEAPI_") and "TOKEN" not in name:
            monkeypatch.delenv(name)
    return "VOICEAPI_TOKEN_ACME"


def acme(sim: VoiceSimulator, token_env: str, **fields: Any) -> Account:
    return Account(
        "acme", token_env=token_env, base_url=sim.base_url, timezone=TZ, settings=QUICK, **fields
    )


def materialize(
    defs: dg.Definitions, partition: str, instance: dg.DagsterInstance, **options: Any
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        list(assets_by_key(defs).values()),
        partition_key=partition,
        instance=instance,
        **options,
    )


def assets_by_key(defs: dg.Definitions) -> dict[str, dg.AssetsDefinition]:
    return {
        key.to_user_string(): asset
        for asset in defs.assets or ()
        if isinstance(asset, dg.AssetsDefinition)
        for key in asset.keys
    }


def metadata(event: dg.DagsterEvent) -> dict[str, Any]:
    """A materialisation's metadata as plain values."""
    assert event.materialization is not None
    return {name: value.value for name, value in event.materialization.metadata.items()}


def step_errors(result: dg.ExecuteInProcessResult) -> str:
    """The messages of a run's failed steps, one a line."""
    lines = []
    for event in result.all_events:
        error = event.step_failure_data.error if event.is_step_failure else None
        messages = []
        while error is not None:
            messages.append(error.message.strip())
            error = error.cause
        if messages:
            lines.append(" <- ".join(messages))
    return "\n".join(lines)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_under(folder: Path) -> dict[str, str]:
    return {
        path.relative_to(folder).as_posix(): sha256(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


# -- the package without dagster ----------------------------------------------------------


def test_the_package_imports_without_dagster() -> None:
    """Importing the package and its contrib does not import dagster, nor need it."""
    script = textwrap.dedent(
        """
        import sys

        class NoDagster:
            def find_spec(self, name, path=None, target=None):
                if name == "dagster" or name.startswith("dagster."):
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                return None

        import voiceapi_async, voiceapi_async.backfill, voiceapi_async.contrib
        import voiceapi_async.export
        assert not [m for m in sys.modules if m.split(".")[0] == "dagster"]
        sys.meta_path.insert(0, NoDagster())
        try:
            import voiceapi_async.contrib.dagster
        except ModuleNotFoundError as exc:
            print("refused:", exc.name)
        """
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "refused: dagster"


# -- the files: the command's, byte for byte ------------------------------------------------


def test_a_materialised_range_is_the_commands_dataset_byte_for_byte(
    sim: VoiceSimulator, token_env: str, tmp_path: Path
) -> None:
    """Three days materialised by Dagster are the files and audio `voiceapi backfill` writes."""
    command_out = tmp_path / "command"
    done = voiceapi(
        "backfill",
        "all",
        "--from",
        DAYS[0],
        "--to",
        DAYS[-1],
        "--out",
        str(command_out),
        "--format",
        "parquet",
        "--audio",
        "--rate-limit",
        "0",
        env={"VOICEAPI_BASE_URL": sim.base_url, "VOICEAPI_TOKEN": TOKEN, "VOICEAPI_TIMEZONE": TZ},
    )
    assert done.returncode == 0, done.stderr
    defs = voiceapi_definitions(
        [acme(sim, token_env)], tmp_path / "dagster", DAYS[0], format="parquet", audio=True
    )
    with dg.instance_for_test() as instance:
        for day in DAYS:
            assert materialize(defs, f"acme|{day}", instance).success
    dataset = tmp_path / "dagster" / "acme"
    hashes = partition_hashes(dataset)
    assert len(hashes) == 2 * len(DAYS)
    assert hashes == partition_hashes(command_out)
    assert files_under(dataset / "audio") == files_under(command_out / "audio") != {}
    verified = voiceapi("verify", "--out", str(dataset), env={"VOICEAPI_TOKEN": TOKEN})
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert list((dataset / "_tmp").iterdir()) == []


def test_materialisation_metadata_describes_the_file(
    sim: VoiceSimulator, token_env: str, tmp_path: Path
) -> None:
    """Records, pages, bytes, checksum, time zone and path are the written file's."""
    other = Account(
        "zulu", token_env=token_env, base_url=sim.base_url, timezone="UTC", settings=QUICK
    )
    defs = voiceapi_definitions(
        [acme(sim, token_env), other], tmp_path, DAYS[0], format="parquet", audio=True
    )
    with dg.instance_for_test() as instance:
        results = [
            materialize(
                defs,
                "acme|2024-03-02",
                instance,
                selection=dg.AssetSelection.key_prefixes(["voiceapi", "asia_kolkata"]),
            ),
            materialize(
                defs,
                "zulu|2024-03-02",
                instance,
                selection=[dg.AssetKey(["voiceapi", "utc", "calls"])],
            ),
        ]
    events = [event for result in results for event in result.get_asset_materialization_events()]
    by_key = {str(event.asset_key and event.asset_key.to_user_string()): event for event in events}
    assert sorted(by_key) == [
        "voiceapi/asia_kolkata/calls",
        "voiceapi/asia_kolkata/recording_audio",
        "voiceapi/asia_kolkata/recordings",
        "voiceapi/utc/calls",
    ]
    for key, account, zone, report in [
        ("voiceapi/asia_kolkata/calls", "acme", TZ, "calls"),
        ("voiceapi/asia_kolkata/recordings", "acme", TZ, "recordings"),
        ("voiceapi/utc/calls", "zulu", "UTC", "calls"),
    ]:
        event = by_key[key]
        meta = metadata(event)
        path = tmp_path / account / report / "date=2024-03-02" / "part-0.parquet"
        with Manifest(tmp_path / account / "_manifest.sqlite") as manifest:
            entry = manifest.entry(f"{report}/2024-03-02")
        assert entry is not None
        assert event.partition == f"{account}|2024-03-02"
        assert meta["path"] == str(path)
        assert meta["records"] == pq.read_metadata(path).num_rows > 0
        assert meta["pages"] == entry.pages == math.ceil(meta["records"] / 100)
        assert meta["bytes"] == path.stat().st_size
        assert meta["checksum"] == sha256(path)
        assert meta["timezone"] == zone
        assert (meta["account"], meta["window"]) == (account, f"{report}/2024-03-02")
        assert meta["requests"] == meta["pages"]
        assert meta["rate_limited"] == 0
    audio = metadata(by_key["voiceapi/asia_kolkata/recording_audio"])
    folder = tmp_path / "acme" / "audio" / "date=2024-03-02"
    on_disk = [path for path in folder.iterdir() if path.is_file()]
    assert audio["path"] == str(folder)
    assert audio["files"] == audio["downloaded"] == len(on_disk) > 0
    assert audio["bytes"] == sum(path.stat().st_size for path in on_disk)
    assert audio["already_present"] == 0


# -- the definitions ------------------------------------------------------------------------


def test_one_asset_set_per_time_zone_with_a_pool_named_after_its_tokens(
    sim: VoiceSimulator, token_env: str, tmp_path: Path
) -> None:
    """Zones get their own assets, jobs and schedules; partitions are date x account."""
    accounts = [
        acme(sim, token_env),
        Account("bravo", token_env="VOICEAPI_TOKEN_BRAVO", base_url=sim.base_url, timezone=TZ),
        Account("zulu", token_env="VOICEAPI_TOKEN_ZULU", base_url=sim.base_url, timezone="UTC"),
    ]
    defs = voiceapi_definitions(accounts, tmp_path, "2024-03-01")
    assets = assets_by_key(defs)
    assert sorted(assets) == [
        "voiceapi/asia_kolkata/calls",
        "voiceapi/asia_kolkata/recordings",
        "voiceapi/utc/calls",
        "voiceapi/utc/recordings",
    ]
    kolkata = assets["voiceapi/asia_kolkata/calls"]
    assert kolkata.op.pool == "voiceapi-VOICEAPI_TOKEN_ACME+VOICEAPI_TOKEN_BRAVO"
    assert assets["voiceapi/utc/recordings"].op.pool == "voiceapi-VOICEAPI_TOKEN_ZULU"
    partitions = kolkata.partitions_def
    assert isinstance(partitions, dg.MultiPartitionsDefinition)
    dimensions = {d.name: d.partitions_def for d in partitions.partitions_defs}
    assert dimensions["account"].get_partition_keys() == ["acme", "bravo"]
    daily = dimensions["date"]
    assert isinstance(daily, dg.DailyPartitionsDefinition)
    assert daily.timezone == TZ
    assert daily.get_first_partition_key() == "2024-03-01"
    assert defs.resolve_job_def("voiceapi_utc_job").partitions_def is not None
    schedule = defs.resolve_schedule_def("voiceapi_asia_kolkata_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 2 * * *", TZ)
    assert schedule.default_status is dg.DefaultScheduleStatus.STOPPED


# Dagster warns about its own run tags of multi-partitioned run requests
# (dagster/partition/<dimension> has two '/'); a schedule tick logs it and goes on.
@pytest.mark.filterwarnings("ignore:Non-compliant tag keys like .'dagster/partition/")
def test_the_schedule_materialises_the_last_days_of_every_account(
    sim: VoiceSimulator, token_env: str, tmp_path: Path
) -> None:
    """A tick asks for the last N complete days in its zone, of each account, from the start."""
    accounts = [
        acme(sim, token_env),
        Account("bravo", token_env="VOICEAPI_TOKEN_BRAVO", base_url=sim.base_url, timezone=TZ),
    ]
    defs = voiceapi_definitions(accounts, tmp_path, "2024-03-01", lookback_days=3)
    schedule = defs.resolve_schedule_def("voiceapi_asia_kolkata_schedule")

    def requested(when: dt.datetime) -> list[str]:
        with dg.build_schedule_context(
            scheduled_execution_time=when, repository_def=defs.get_repository_def()
        ) as context:
            data = schedule.evaluate_tick(context)
        return [str(request.partition_key) for request in data.run_requests or ()]

    # 02:00 on 2024-03-10 in Kolkata is 20:30 UTC the day before.
    tick = dt.datetime(2024, 3, 9, 20, 30, tzinfo=dt.UTC)
    assert requested(tick) == [
        f"{account}|{day}"
        for day in ("2024-03-09", "2024-03-08", "2024-03-07")
        for account in ("acme", "bravo")
    ]
    assert requested(dt.datetime(2024, 3, 2, 20, 30, tzinfo=dt.UTC)) == [
        "acme|2024-03-02",
        "bravo|2024-03-02",
        "acme|2024-03-01",
        "bravo|2024-03-01",
    ]
    with dg.build_schedule_context(
        scheduled_execution_time=tick, repository_def=defs.get_repository_def()
    ) as context:
        keys = [request.run_key for request in schedule.evaluate_tick(context).run_requests or ()]
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda a: voiceapi_definitions([], "out", "2024-03-01"), "at least one account"),
        (lambda a: voiceapi_definitions([a, a], "out", "2024-03-01"), "names must differ"),
        (
            lambda a: voiceapi_definitions([a], "out", "2024-03-01", lookback_days=0),
            "lookback_days",
        ),
        (lambda a: voiceapi_definitions([a], "out", "2024-03-01", key_prefix="a/b"), "key_prefix"),
        (lambda a: voiceapi_definitions([a], "out", "2024-03-01", format="xml"), "xml"),
        (lambda a: voiceapi_definitions([a], "out", "March"), "March"),
        (lambda a: Account("a/b", "T", "http://h/", "UTC"), "account name"),
        (lambda a: Account("a", "abc def", "http://h/", "UTC"), "token_env"),
        (
            lambda a: Account("a", "T", "http://h/", "UTC", settings={"token": "x"}),
            "must not hold token",
        ),
        (
            lambda a: voiceapi_definitions(
                [attrs.evolve(a, settings={"rate_limit": -1})], "out", "2024-03-01"
            ),
            "rate_limit",
        ),
        (
            lambda a: voiceapi_definitions(
                [attrs.evolve(a, timezone="Mars/Olympus")], "out", "2024-03-01"
            ),
            "Mars/Olympus",
        ),
        (
            lambda a: voiceapi_definitions(
                [
                    Account("c", token_env="T", base_url="http://h/", timezone="Etc/GMT+5"),
                    Account("d", token_env="T", base_url="http://h/", timezone="Etc/GMT-5"),
                ],
                "out",
                "2024-03-01",
            ),
            "same asset key",
        ),
    ],
)
def test_bad_definitions_fail_at_load_time(call: Any, message: str) -> None:
    """Mistakes in the configuration fail when the definitions load, with what to fix."""
    account = Account("a", token_env="T", base_url="http://127.0.0.1:1/api/v2/", timezone="UTC")
    with pytest.raises(ValueError, match=message):
        call(account)


# -- failures ----------------------------------------------------------------------------------


def test_a_step_fails_clearly_without_its_token_or_on_a_failed_window(
    token_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing variable, a day still too recent and a failed window fail the step, saying why."""
    config = SimulatorConfig(
        token=TOKEN, calls_per_day=10, rate_limit=0, faults=Faults(server_error=1.0)
    )
    today = dt.datetime.now(dt.UTC).date()
    with serve_in_thread(config) as failing, dg.instance_for_test() as instance:
        defs = voiceapi_definitions(
            [
                Account("acme", token_env, failing.base_url, "UTC", settings=QUICK),
                Account("nokey", "VOICEAPI_TOKEN_NOKEY", failing.base_url, "UTC"),
            ],
            tmp_path,
            today - dt.timedelta(days=3),
            safety_lag=dt.timedelta(days=2),
        )
        monkeypatch.delenv("VOICEAPI_TOKEN_NOKEY", raising=False)
        messages = []
        for partition in (
            f"nokey|{today - dt.timedelta(days=2)}",
            f"acme|{today - dt.timedelta(days=1)}",
            f"acme|{today - dt.timedelta(days=3)}",
        ):
            result = materialize(defs, partition, instance, raise_on_error=False)
            assert not result.success
            messages.append(step_errors(result))
    assert "VOICEAPI_TOKEN_NOKEY is not set" in messages[0]
    assert "nothing to do" in messages[1]
    assert "calls/" in messages[2]
    assert "500" in messages[2] or "server" in messages[2].lower()


def test_a_command_run_and_the_assets_keep_each_other_out(
    sim: VoiceSimulator, token_env: str, tmp_path: Path
) -> None:
    """While the command holds an account's directory, its steps fail saying so, writing nothing."""
    defs = voiceapi_definitions([acme(sim, token_env)], tmp_path, DAYS[0])
    with OutputLock(tmp_path / "acme"), dg.instance_for_test() as instance:
        result = materialize(defs, f"acme|{DAYS[0]}", instance, raise_on_error=False)
        assert not result.success
        errors = step_errors(result).splitlines()
        assert len(errors) == 2
        assert all("another backfill is writing to" in error for error in errors)
    assert not (tmp_path / "acme" / "calls").exists()
    with OutputLock(tmp_path / "acme", shared=True), pytest.raises(OutputLockedError):
        OutputLock(tmp_path / "acme").acquire()


# -- secrets --------------------------------------------------------------------------------


def test_the_token_never_reaches_dagsters_storage_events_or_logs(
    sim: VoiceSimulator, token_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not in the event log, metadata, tags, run records or captured logs: not even a wrong one."""
    monkeypatch.setenv("VOICEAPI_TOKEN_WRONG", WRONG_TOKEN)
    wrong = Account("wrong", token_env="VOICEAPI_TOKEN_WRONG", base_url=sim.base_url, timezone=TZ)
    defs = voiceapi_definitions([acme(sim, token_env), wrong], tmp_path / "out", DAYS[0])
    home = tmp_path / "dagster_home"
    home.mkdir()
    overrides = {
        "python_logs": {"managed_python_loggers": ["voiceapi_async"], "python_log_level": "DEBUG"}
    }
    with dg.instance_for_test(overrides=overrides, temp_dir=str(home)) as instance:
        assert materialize(defs, f"acme|{DAYS[0]}", instance).success
        failed = materialize(defs, f"wrong|{DAYS[0]}", instance, raise_on_error=False)
        assert not failed.success
        runs = instance.get_runs()
        assert len(runs) == 2
        serialized = "\n".join(
            dg.serialize_value(entry) for run in runs for entry in instance.all_logs(run.run_id)
        )
        serialized_runs = "\n".join(dg.serialize_value(run) for run in runs)
    assert "AuthenticationError" in serialized or "401" in serialized
    assert "voiceapi_async" in serialized  # the library's own log lines were captured
    for secret in (TOKEN, WRONG_TOKEN):
        assert secret not in serialized
        assert secret not in serialized_runs
        for path in home.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path


# -- many processes, one token ---------------------------------------------------------------

RATE_LIMIT = 20
RATE_WINDOW = 2.0
"""The simulator's limit: 20 requests every 2 seconds (a minute, scaled down)."""


def example_defs() -> dg.Definitions:
    """The definitions of ``examples/dagster_defs.py``, as ``dagster dev -f`` loads them."""
    spec = importlib.util.spec_from_file_location(
        "dagster_defs", ROOT / "examples" / "dagster_defs.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    defs: dg.Definitions = module.defs
    return defs


def example_job() -> dg.JobDefinition:
    """The example's job, rebuilt in every process of the multiprocess executor."""
    return example_defs().resolve_job_def("voiceapi_asia_kolkata_job")


def test_the_example_backs_up_one_account_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The example reads the address, zone and output from VOICEAPI_* and names no token."""
    monkeypatch.setenv("VOICEAPI_BASE_URL", "http://127.0.0.1:1/api/v2/")
    monkeypatch.setenv("VOICEAPI_TIMEZONE", "UTC")
    monkeypatch.setenv("VOICEAPI_DAGSTER_OUT", str(tmp_path))
    monkeypatch.delenv("VOICEAPI_TOKEN", raising=False)  # read by steps, not at load time
    defs = example_defs()
    assert sorted(assets_by_key(defs)) == ["voiceapi/utc/calls", "voiceapi/utc/recordings"]
    assert assets_by_key(defs)["voiceapi/utc/calls"].op.pool == "voiceapi-VOICEAPI_TOKEN"
    assert defs.resolve_schedule_def("voiceapi_utc_schedule").execution_timezone == "UTC"


def test_parallel_steps_on_one_token_meet_no_429_after_the_first_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The example's calls and recordings steps, two processes on one token, share its quota."""
    config = SimulatorConfig(
        token=TOKEN,
        calls_per_day=60,
        per_page_max=2,
        rate_limit=RATE_LIMIT,
        rate_window=RATE_WINDOW,
    )
    with serve_in_thread(config) as limited:
        for name in [name for name in os.environ if name.startswith("VOICEAPI_")]:
            monkeypatch.delenv(name)
        monkeypatch.setenv("VOICEAPI_BASE_URL", limited.base_url)
        monkeypatch.setenv("VOICEAPI_TOKEN", TOKEN)
        monkeypatch.setenv("VOICEAPI_TIMEZONE", TZ)
        monkeypatch.setenv("VOICEAPI_RATE_WINDOW", str(RATE_WINDOW))
        monkeypatch.setenv("VOICEAPI_DAGSTER_OUT", str(tmp_path / "out"))
        monkeypatch.setenv("VOICEAPI_DAGSTER_START", DAYS[0])
        home = tmp_path / "dagster_home"
        home.mkdir()
        with dg.instance_for_test(temp_dir=str(home)) as instance:
            result = dg.execute_job(
                dg.reconstructable(example_job),
                instance=instance,
                tags={"dagster/partition": f"main|{DAYS[0]}"},
                run_config={
                    "execution": {"config": {"multiprocess": {"start_method": {"spawn": {}}}}}
                },
            )
            assert result.success
            workers = {
                event.pid
                for event in result.all_events
                if event.event_type_value == "STEP_WORKER_STARTED"
            }
        requests = limited.observed.report_requests()
    assert len(workers - {os.getpid()}) == 2  # a process for each report's step
    calls, recordings = (
        [r.time for r in requests if r.path.endswith(report)] for report in ("calls", "recordings")
    )
    assert min(calls) < max(recordings)  # the two ran at once
    assert min(recordings) < max(calls)
    first = min(request.time for request in requests)
    late_429s = [r for r in requests if r.status == 429 and r.time >= first + RATE_WINDOW]
    assert late_429s == []
    assert sum(r.status == 200 for r in requests) > RATE_LIMIT  # more than one window's work
    for path in home.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
