"""Dagster integration: both reports as daily-partitioned assets, written like the command.

Needs the ``dagster`` extra (``pip install 'voiceapi-async[dagster]'``)::

    defs = voiceapi_definitions(
        accounts=[
            Account(
                "acme",
                token_env="VOICEAPI_TOKEN_ACME",
                base_url="https://portal.example.com/api/v2/",
                timezone="Asia/Kolkata",
            )
        ],
        out="export",
        start_date="2024-01-01",
    )

:func:`voiceapi_definitions` returns a :class:`dagster.Definitions`. Accounts are
grouped by time zone; each zone gets one asset set, keyed ``voiceapi/<zone>/...``
(``voiceapi/asia_kolkata/calls``, ``.../recordings`` and, with ``audio=True``,
``.../recording_audio``), partitioned by day in that zone times account
(``acme|2024-03-05``). A partition is one window of :mod:`voiceapi_async.backfill`:
the asset runs :class:`~voiceapi_async.backfill.Backfill` on it, so its file,
``OUT/<account>/<report>/date=YYYY-MM-DD/part-0.<ext>``, is the one ``voiceapi
backfill --out OUT/<account>`` writes, byte for byte, and ``OUT/<account>`` is a
dataset the command and ``voiceapi verify`` read and write too (one at a time:
the assets share the directory's lock with each other, not with the command).
Every materialisation reads its day again and replaces the file whole.

Each account's token is read, when a step runs, from the environment variable
the account names (``token_env``); it never enters Dagster's configuration,
metadata, tags or logs. The steps read through the backfill, so they pace
themselves as bulk work: processes sharing a token follow its ``X-RateLimit``
headers and leave a reserve to interactive clients. The assets of a zone are in
one concurrency pool named after their tokens' variables
(``voiceapi-VOICEAPI_TOKEN_ACME``): Dagster pools belong to assets, not to
partitions, so accounts of one zone share theirs (one token per zone makes it
exactly one pool per token). Each zone also gets a job
and a schedule that re-materialises the last ``lookback_days`` complete days of
every account each day.
"""

# No `from __future__ import annotations`: Dagster checks the annotation of an
# asset's `context` parameter by identity, so it must not be a string.

import asyncio
import datetime as dt
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import dagster as dg
import pendulum
from dagster import AssetExecutionContext

from voiceapi_async import ClientConfig, Report, VoiceClient, Window
from voiceapi_async.backfill import (
    DEFAULT_SAFETY_LAG,
    Backfill,
    Manifest,
    OutputLock,
    Summary,
    WindowEntry,
    WindowState,
    plan,
)
from voiceapi_async.export import get_format

__all__ = ["Account", "voiceapi_definitions"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PREFIX = re.compile(r"[A-Za-z0-9_]+")
_PLACEHOLDER_TOKEN = "checked-when-the-step-runs"
"""Stands in for the token while the settings are checked at load time."""
_KEPT_OUT = frozenset({"base_url", "token", "timezone"})


def _check_name(instance: object, attribute: "attrs.Attribute[str]", value: str) -> None:
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"account name {value!r} must be letters, digits, '_', '.' or '-', "
            "starting with a letter or digit (it names a folder and a partition)"
        )


def _check_env_name(instance: object, attribute: "attrs.Attribute[str]", value: str) -> None:
    if not _ENV_NAME.fullmatch(value):
        raise ValueError(
            "token_env must name an environment variable (letters, digits and '_'), "
            "not hold a token"
        )


def _check_settings(
    instance: object, attribute: "attrs.Attribute[Mapping[str, Any]]", value: Mapping[str, Any]
) -> None:
    if kept := sorted(_KEPT_OUT & set(value)):
        raise ValueError(
            f"settings must not hold {', '.join(kept)}: the account's own fields set them "
            "(and the token comes from token_env)"
        )


@attrs.frozen
class Account:
    """One account of the Voice API, read with its own token.

    Attributes:
        name: names the account's partitions and its folder under ``out``.
        token_env: the environment variable that holds the account's API token
            (its value is read when a step runs, never stored).
        base_url: the API root, like ``https://portal.example.com/api/v2/``.
        timezone: the account's time zone (required, as everywhere): its days,
            windows and partitions.
        settings: other :class:`~voiceapi_async.ClientConfig` fields for its client
            (``rate_limit``, ``max_in_flight``, ``retry``, ...). They override the
            ``VOICEAPI_*`` environment variables, which apply to every account as
            in the command (``ClientConfig.from_env``).
    """

    name: str = attrs.field(validator=_check_name)
    token_env: str = attrs.field(validator=_check_env_name)
    base_url: str
    timezone: str
    settings: Mapping[str, Any] = attrs.field(factory=dict, validator=_check_settings)

    def client_config(self, token: str) -> ClientConfig:
        """Return the account's client settings with ``token``.

        Raises:
            ValueError: a bad setting (named in the message, never the token).
        """
        return ClientConfig.from_env(
            base_url=self.base_url, token=token, timezone=self.timezone, **self.settings
        )


@attrs.frozen
class _Export:
    """What every asset writes, and where."""

    out: Path
    format: str
    compress: bool
    audio: bool
    safety_lag: dt.timedelta


def voiceapi_definitions(
    accounts: Sequence[Account],
    out: str | Path,
    start_date: str | dt.date,
    *,
    format: str = "parquet",
    compress: bool = False,
    audio: bool = False,
    lookback_days: int = 3,
    cron_schedule: str = "0 2 * * *",
    safety_lag: dt.timedelta = DEFAULT_SAFETY_LAG,
    key_prefix: str = "voiceapi",
    schedule_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.STOPPED,
) -> dg.Definitions:
    """Return Dagster definitions that back up the accounts' calls and recordings by day.

    Args:
        accounts: the accounts (distinct names); one asset set per time zone among them.
        out: the output directory; each account's dataset is ``out/<name>``.
        start_date: the first day of every account's partitions.
        format: ``jsonl``, ``csv`` or ``parquet``, as the command's ``--format``.
        compress: gzip JSON Lines files (``--gzip``).
        audio: also download each recording's audio (``--audio``): the recordings
            step then materialises a ``recording_audio`` asset too.
        lookback_days: complete days the schedule materialises each day: the day
            that just ended and the ones before it.
        cron_schedule: when the schedule runs, in each zone's time (after
            ``safety_lag`` past midnight, or the newest day is cut short and read
            whole on the next run).
        safety_lag: data younger than this is not read (``--safety-lag-minutes``).
        key_prefix: the first part of every asset key and of job and schedule names.
        schedule_status: whether the schedules start running or stopped.

    Raises:
        ValueError: no accounts, two with one name, a bad setting, a bad
            ``start_date`` or zone, or ``lookback_days`` below 1.
    """
    if not accounts:
        raise ValueError("give at least one account")
    names = [account.name for account in accounts]
    if len(set(names)) != len(names):
        raise ValueError(f"account names must differ: {sorted(names)}")
    if lookback_days < 1:
        raise ValueError(f"lookback_days must be 1 or more, not {lookback_days}")
    if not _PREFIX.fullmatch(key_prefix):
        raise ValueError(f"key_prefix {key_prefix!r} must be letters, digits and '_'")
    get_format(format, compress=compress, timezone="UTC")  # fails here, not in every step
    first_day = start_date if isinstance(start_date, dt.date) else dt.date.fromisoformat(start_date)
    for account in accounts:
        account.client_config(_PLACEHOLDER_TOKEN)  # bad settings fail at load time
    export = _Export(Path(out).absolute(), format, compress, audio, safety_lag)
    zones: dict[str, list[Account]] = {}
    for account in accounts:
        zones.setdefault(account.timezone, []).append(account)
    slugs = {zone: _slug(zone) for zone in zones}
    if len(set(slugs.values())) != len(slugs):
        raise ValueError(f"time zones {sorted(zones)} give the same asset key: use one of each")
    sets = [
        _ZoneSet(key_prefix, zone, slugs[zone], members, first_day, export)
        for zone, members in zones.items()
    ]
    jobs = [
        dg.define_asset_job(
            f"{zone_set.name}_job",
            selection=dg.AssetSelection.assets(*zone_set.assets),
            description=f"Back up the accounts of {zone_set.zone}, a day of an account a run.",
        )
        for zone_set in sets
    ]
    schedules = [
        dg.ScheduleDefinition(
            name=f"{zone_set.name}_schedule",
            cron_schedule=cron_schedule,
            execution_timezone=zone_set.zone,
            job=job,
            execution_fn=zone_set.lookback(lookback_days),
            default_status=schedule_status,
            description=(
                f"Every day, materialise the last {lookback_days} complete day(s) in "
                f"{zone_set.zone} of every account."
            ),
        )
        for zone_set, job in zip(sets, jobs, strict=True)
    ]
    assets = [asset for zone_set in sets for asset in zone_set.assets]
    return dg.Definitions(assets=assets, jobs=jobs, schedules=schedules)


def _slug(zone: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", zone.lower()).strip("_")


class _ZoneSet:
    """The assets, pool and schedule of the accounts of one time zone."""

    def __init__(
        self,
        prefix: str,
        zone: str,
        slug: str,
        accounts: list[Account],
        first_day: dt.date,
        export: _Export,
    ) -> None:
        self.prefix = prefix
        self.zone = zone
        self.name = f"{prefix}_{slug}"
        self.key = [prefix, slug]
        self.accounts = {account.name: account for account in accounts}
        self.first_day = first_day
        self.export = export
        self.pool = "voiceapi-" + "+".join(sorted({a.token_env for a in accounts}))
        self.partitions = dg.MultiPartitionsDefinition(
            {
                "date": dg.DailyPartitionsDefinition(
                    start_date=first_day.isoformat(), timezone=zone, end_offset=0
                ),
                "account": dg.StaticPartitionsDefinition(sorted(self.accounts)),
            }
        )
        self.assets = self._assets()

    def _assets(self) -> list[dg.AssetsDefinition]:
        calls = dg.AssetSpec(
            [*self.key, "calls"],
            description=f"Call logs, one file a day in {self.zone} per account.",
        )
        recordings = [
            dg.AssetSpec(
                [*self.key, "recordings"],
                description=f"Recordings, one file a day in {self.zone} per account.",
            )
        ]
        if self.export.audio:
            recordings.append(
                dg.AssetSpec(
                    [*self.key, "recording_audio"],
                    description="Each recording's audio file, by the day of its created_at.",
                )
            )
        return [self._asset(Report.CALLS, [calls]), self._asset(Report.RECORDINGS, recordings)]

    def _asset(self, report: Report, specs: list[dg.AssetSpec]) -> dg.AssetsDefinition:
        @dg.multi_asset(
            name=f"{self.name}_{report}",
            specs=specs,
            partitions_def=self.partitions,
            pool=self.pool,
        )
        def export_day(context: AssetExecutionContext) -> Iterator[dg.MaterializeResult[Any]]:
            keys = self.partitions.get_partition_key_from_str(context.partition_key)
            account = self.accounts[keys.keys_by_dimension["account"]]
            day = dt.date.fromisoformat(keys.keys_by_dimension["date"])
            yield from self._materialize(context, account, report, day, specs)

        return export_day

    def _materialize(
        self,
        context: dg.AssetExecutionContext,
        account: Account,
        report: Report,
        day: dt.date,
        specs: list[dg.AssetSpec],
    ) -> Iterator[dg.MaterializeResult[Any]]:
        token = dg.EnvVar(account.token_env).get_value()
        if not token:
            raise dg.Failure(
                f"the environment variable {account.token_env} is not set: "
                f"set it to the API token of {account.name}"
            )
        try:
            windows = plan(report, day, day, account.timezone, safety_lag=self.export.safety_lag)
        except ValueError as exc:
            raise dg.Failure(str(exc)) from None
        summary, entry = asyncio.run(self._run(account, token, windows))
        if summary.failed:
            key, error = summary.failed[0]
            raise dg.Failure(f"{account.name} {key}: {error}")
        if entry is None or entry.state is not WindowState.DONE or entry.output is None:
            raise dg.Failure(f"{account.name} {windows[0].key} was not written: run it again")
        path = self.export.out / account.name / entry.output
        context.log.info(
            f"{account.name} {entry.key}: {entry.records} records in {entry.pages} pages -> {path}"
        )
        common = {"account": account.name, "timezone": account.timezone, "window": entry.key}
        yield dg.MaterializeResult(
            asset_key=specs[0].key,
            metadata={
                **common,
                "records": entry.records,
                "pages": entry.pages,
                "bytes": entry.size,
                "checksum": entry.checksum,
                "path": dg.MetadataValue.path(str(path)),
                "requests": summary.requests,
                "rate_limited": summary.rate_limited,
            },
        )
        if len(specs) > 1:
            # The day's folder holds exactly the window's files (temporary ones live in _tmp).
            folder = self.export.out / account.name / "audio" / path.parent.name
            files = [file for file in folder.glob("*") if file.is_file()]
            yield dg.MaterializeResult(
                asset_key=specs[1].key,
                metadata={
                    **common,
                    "files": len(files),
                    "bytes": sum(file.stat().st_size for file in files),
                    "downloaded": summary.audio_files,
                    "already_present": summary.audio_present,
                    "not_presigned": summary.audio_unsigned,
                    "path": dg.MetadataValue.path(str(folder)),
                },
            )

    async def _run(
        self, account: Account, token: str, windows: list[Window]
    ) -> tuple[Summary, WindowEntry | None]:
        """Run the day's window through the backfill, sharing the dataset with other steps."""
        out_dir = self.export.out / account.name
        fmt = get_format(self.export.format, compress=self.export.compress, timezone=self.zone)
        with (
            OutputLock(out_dir, shared=True) as lock,
            Manifest(out_dir / "_manifest.sqlite") as manifest,
        ):
            async with VoiceClient(account.client_config(token)) as client:
                runner = Backfill(
                    client,
                    manifest,
                    fmt,
                    out_dir,
                    force={window.key for window in windows},
                    timezone=account.timezone,
                    lock=lock,
                    audio=self.export.audio,
                )
                summary = await runner.run(windows)
            return summary, manifest.entry(windows[0].key)

    def lookback(
        self, lookback_days: int
    ) -> Callable[[dg.ScheduleEvaluationContext], Iterator[dg.RunRequest]]:
        """Return the schedule's function: the last complete days of every account."""

        def days_to_run(context: dg.ScheduleEvaluationContext) -> Iterator[dg.RunRequest]:
            tick = pendulum.instance(context.scheduled_execution_time).in_timezone(self.zone)
            newest = tick.date() - dt.timedelta(days=1)
            for back in range(lookback_days):
                day = newest - dt.timedelta(days=back)
                if day < self.first_day:
                    break
                for name in sorted(self.accounts):
                    key = dg.MultiPartitionKey({"date": day.isoformat(), "account": name})
                    yield dg.RunRequest(
                        run_key=f"{key}@{tick.date().isoformat()}", partition_key=str(key)
                    )

        return days_to_run
