"""The ``voiceapi`` command: stream reports, run backfills, serve the simulator.

Built with click (small, stable, explicit; typer would add its own dependencies for
little gain here) and rich for progress bars and the summary table.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import importlib.util
import logging
import os
import re
import shlex
import subprocess
import sys
import tempfile
import zoneinfo
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import attrs
import click
import stamina.instrumentation
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from voiceapi_async import (
    AudioResult,
    AudioStatus,
    AuthenticationError,
    ClientConfig,
    NotFoundError,
    PermissionDeniedError,
    Record,
    Report,
    RetryPolicy,
    TransportError,
    VoiceAPIError,
    VoiceClient,
    Window,
    __version__,
    plan_windows,
)
from voiceapi_async.backfill import (
    Backfill,
    IncompleteRebuildError,
    Manifest,
    ManifestError,
    OutputError,
    OutputLock,
    OutputLockedError,
    SettingsMismatchError,
    Summary,
    VerifyReport,
    lookback_start,
    plan,
    verify,
    verify_sample,
)
from voiceapi_async.export import ExportFormat, get_format, sort_records

T = TypeVar("T")
Bound = dt.date | dt.datetime

EXIT_OK = 0
EXIT_FAILED_WINDOWS = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_UNREACHABLE = 4
EXIT_API = 5
EXIT_OUTPUT = 6
EXIT_LOCKED = 7
EXIT_INTERRUPTED = 130

DEMO_TOKEN = "demo-token"
DEMO_DAYS = 90
DEMO_SEED = 2024
DEMO_START_TIMEOUT = 60.0
"""Seconds the demo waits for its simulator process to print its address."""
DEFAULT_MAX_DAYS = attrs.fields(ClientConfig).max_days.default or 0
_MAX_DAYS_SETTING = "--max-days, VOICEAPI_MAX_DAYS"

_err = Console(stderr=True)


@attrs.frozen
class Connection:
    """Where and how to reach the API, from flags or VOICEAPI_* variables."""

    base_url: str | None
    token: str | None
    timezone: str | None
    """The account's zone; None when not given (with ``--demo``: the simulator's)."""
    demo: bool
    rate_limit: int | None
    max_attempts: int
    max_days: int
    per_page: int | None = None
    simulator_zone: bool = False
    """Whether the zone is the demo simulator's, for want of ``--timezone``."""


_STATE_OPTION = click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="manifest file (default OUT/_manifest.sqlite)",
)


def connection_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the options every API command shares."""
    options = [
        click.option(
            "--base-url",
            envvar="VOICEAPI_BASE_URL",
            help="API root, e.g. https://portal.example.com/api/v2/ [VOICEAPI_BASE_URL]",
        ),
        click.option("--token", envvar="VOICEAPI_TOKEN", help="API token [VOICEAPI_TOKEN]"),
        click.option(
            "--timezone",
            envvar="VOICEAPI_TIMEZONE",
            default=None,
            callback=_zone_option,
            metavar="ZONE",
            help="the account's time zone, as set in the account's settings in the provider's "
            "dashboard (required; an IANA name such as Asia/Kolkata; --demo: the simulator's) "
            "[VOICEAPI_TIMEZONE]",
        ),
        click.option(
            "--demo", is_flag=True, help="start the bundled simulator (with some faults) and use it"
        ),
        click.option(
            "--rate-limit",
            type=click.IntRange(min=0),
            default=None,
            help="at most this many requests a minute (default: as the server's "
            "X-RateLimit headers allow; 0: no pacing)",
        ),
        click.option(
            "--per-page",
            envvar="VOICEAPI_PER_PAGE",
            type=click.IntRange(min=1),
            default=None,
            help="pin the page size asked for (default: learn the largest the server "
            "allows, up to 1,000) [VOICEAPI_PER_PAGE]",
        ),
        click.option(
            "--max-attempts",
            type=click.IntRange(min=1),
            default=6,
            show_default=True,
            help="attempts per request before giving up",
        ),
        click.option(
            "--max-days",
            envvar="VOICEAPI_MAX_DAYS",
            type=click.IntRange(min=1),
            default=DEFAULT_MAX_DAYS,
            show_default=True,
            help="the longest range, in days, a command may cover [VOICEAPI_MAX_DAYS]",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _zone_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Check ``--timezone`` names an IANA time zone (it may be absent until needed)."""
    if value is None:
        return None
    try:
        zoneinfo.ZoneInfo(value)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        raise click.UsageError(
            f"--timezone {value!r} is not a time zone: give the account's IANA time zone, "
            "such as Asia/Kolkata or UTC (it is in the account's settings in the provider's "
            "dashboard)",
            ctx,
        ) from None
    return value


def _bound_option(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> dt.date | dt.datetime | None:
    """Read ``--from``/``--to``: a whole day, or a date and time with its UTC offset."""
    if value is None:
        return None
    flag = param.opts[0]
    text = value.strip()
    try:
        bound = dt.date.fromisoformat(text) if len(text) <= 10 else dt.datetime.fromisoformat(text)
    except ValueError:
        raise click.UsageError(
            f"{flag} {value!r} is not a date (YYYY-MM-DD), nor a date and time with its UTC "
            "offset (2024-03-05T10:00:00+05:30)",
            ctx,
        ) from None
    if isinstance(bound, dt.datetime) and bound.utcoffset() is None:
        raise click.UsageError(
            f"{flag} {value!r} has no UTC offset, which is ambiguous: add one, like "
            f"{bound:%Y-%m-%dT%H:%M:%S}+05:30, or give a date ({bound:%Y-%m-%d}) for the whole day",
            ctx,
        )
    return bound


def _connection(kwargs: dict[str, Any]) -> Connection:
    return Connection(
        base_url=kwargs.pop("base_url"),
        token=kwargs.pop("token"),
        timezone=kwargs.pop("timezone"),
        demo=kwargs.pop("demo"),
        rate_limit=kwargs.pop("rate_limit"),
        max_attempts=kwargs.pop("max_attempts"),
        max_days=kwargs.pop("max_days"),
        per_page=kwargs.pop("per_page"),
    )


NO_TIMEZONE = (
    "no time zone: --timezone (or VOICEAPI_TIMEZONE) is required, with no default: the API "
    "reads every date and time in the account's time zone, so a wrong one silently moves "
    "calls to other days. Find it in the account's settings in the provider's dashboard and "
    "pass it, like --timezone Asia/Kolkata (--demo uses the simulator's)"
)


def _zoned(connection: Connection) -> tuple[Connection, str]:
    """Return the connection with its time zone, and the zone; refuse a missing one.

    With ``--demo`` and no ``--timezone``, the zone is the simulator's (its account's).
    """
    if connection.timezone is not None:
        return connection, connection.timezone
    if not connection.demo:
        _usage(NO_TIMEZONE)
    from voiceapi_async.testing import DEFAULT_TIMEZONE

    zoned = attrs.evolve(connection, timezone=DEFAULT_TIMEZONE, simulator_zone=True)
    return zoned, DEFAULT_TIMEZONE


class _Commands(click.Group):
    """The command group; ``serve-fake`` (the simulator's command) loads only when asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), "serve-fake"])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == "serve-fake":
            from voiceapi_async.testing import serve_command

            return serve_command()
        return super().get_command(ctx, cmd_name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="voiceapi")
@click.option("-v", "--verbose", count=True, help="log more (-v info, -vv debug) to stderr")
def main(verbose: int) -> None:
    """Export call logs and recordings from the Voice API."""
    # Retries are logged on the `stamina` logger: shown with -v, never on stdout (stamina
    # would print them there through structlog when that is installed).
    stamina.instrumentation.set_on_retry_hooks([stamina.instrumentation.LoggingOnRetryHook])
    if verbose:
        logging.basicConfig(
            level=logging.DEBUG if verbose > 1 else logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )


def _stream_command(report: Report) -> Callable[..., None]:
    @connection_options
    @click.option(
        "--from",
        "start",
        required=True,
        callback=_bound_option,
        help="first day (YYYY-MM-DD), or a date and time with its UTC offset",
    )
    @click.option("--to", "end", required=True, callback=_bound_option, help="last day, inclusive")
    @click.option(
        "--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True
    )
    def command(start: Bound, end: Bound, fmt: str, **kwargs: Any) -> None:
        _check_order(start, end)
        connection, zone = _zoned(_connection(kwargs))
        _validate_range(report, start, end, zone, connection.max_days)
        _run(_stream_to_stdout(connection, report, start, end, fmt))

    command.__doc__ = f"Stream {report} for a range to stdout."
    return command


main.command("calls")(_stream_command(Report.CALLS))
main.command("recordings")(_stream_command(Report.RECORDINGS))


@main.command("backfill")
@click.argument("what", type=click.Choice(["calls", "recordings", "all"]))
@connection_options
@click.option(
    "--from",
    "start",
    default=None,
    callback=_bound_option,
    help="first day; default: --lookback-days before today (or 90 days with --demo)",
)
@click.option(
    "--to",
    "end",
    default=None,
    callback=_bound_option,
    help="last day, inclusive; default: today (up to now minus the safety lag)",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="output directory (one run at a time: a second run exits 7)",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv", "parquet"]),
    default="jsonl",
    show_default=True,
)
@click.option("--gzip", "compress", is_flag=True, help="gzip JSON Lines files")
@_STATE_OPTION
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="windows read at once",
)
@click.option(
    "--retry-failed", is_flag=True, help="take windows that failed in an earlier run again"
)
@click.option(
    "--lookback-days",
    type=click.IntRange(min=1),
    default=None,
    help="read the last N days again even if done",
)
@click.option(
    "--safety-lag-minutes",
    type=click.IntRange(min=0),
    default=60,
    show_default=True,
    help="never read data younger than this",
)
@click.option(
    "--rebuild",
    is_flag=True,
    help="rewrite every window of the dataset in this run's format, compression and time zone",
)
@click.option(
    "--verify",
    "verify_files",
    is_flag=True,
    help="check done windows' files by their full SHA-256, not only their size",
)
@click.option(
    "--audio",
    is_flag=True,
    help="download each recording's audio to OUT/audio/date=YYYY-MM-DD/ (recordings only)",
)
@click.option(
    "--bulk/--no-bulk",
    default=True,
    show_default=True,
    help="pace as bulk work, leaving 10% of the token's quota to interactive clients "
    "(--no-bulk: may use it too)",
)
def backfill_command(
    what: str,
    start: Bound | None,
    end: Bound | None,
    out_dir: Path,
    fmt: str,
    compress: bool,
    state: Path | None,
    concurrency: int,
    retry_failed: bool,
    lookback_days: int | None,
    safety_lag_minutes: int,
    rebuild: bool,
    verify_files: bool,
    audio: bool,
    bulk: bool,
    **kwargs: Any,
) -> None:
    """Export whole days of calls, recordings or both into partitioned files, resumably."""
    connection, zone = _zoned(_connection(kwargs))
    if compress and fmt != "jsonl":
        _usage(f"--gzip compresses --format jsonl only, not {fmt}")
    try:
        export_format = get_format(fmt, compress=compress, timezone=zone)
    except (ValueError, RuntimeError) as exc:
        _usage(str(exc))
    today = dt.datetime.now(dt.UTC).date()
    if start is None and lookback_days is None and not connection.demo:
        _usage("give --from (or --lookback-days for an incremental run)")
    if end is None:
        end = today - dt.timedelta(days=1) if connection.demo else today
    _check_order(start, end)
    reports = [Report.CALLS, Report.RECORDINGS] if what == "all" else [Report(what)]
    try:
        first = None if lookback_days is None else lookback_start(lookback_days, zone)
        if start is None:
            start = first or today - dt.timedelta(days=DEMO_DAYS)
        lag = _minutes(safety_lag_minutes, "--safety-lag-minutes")
        plans = {
            report: plan(report, start, end, zone, safety_lag=lag, max_days=connection.max_days)
            for report in reports
        }
    except (ValueError, TypeError) as exc:
        _usage(_in_flag_words(str(exc)))
    force: set[str] = set()
    if first is not None:
        force = {w.key for ws in plans.values() for w in ws if w.start.date() >= first}
    try:
        summaries = _run(
            _backfill(
                connection,
                plans,
                out_dir,
                export_format,
                state,
                concurrency,
                retry_failed,
                force,
                rebuild=rebuild,
                verify_files=verify_files,
                audio=audio,
                bulk=bulk,
            )
        )
    except SettingsMismatchError as exc:
        _fail(EXIT_USAGE, _mismatch_message(exc, out_dir))
    except IncompleteRebuildError as exc:
        _fail(EXIT_USAGE, str(exc).replace("give a range", "give --from and --to"))
    _print_summary(summaries, audio=audio)
    _print_files(out_dir, export_format, list(plans), manifest=state is None, audio=audio)
    unsigned = sum(summary.audio_unsigned for summary in summaries.values())
    if unsigned:
        _err.print(
            f"{unsigned} recording(s) link to audio that is not presigned storage: not fetched "
            "(their rows keep the link, with no audio_file)",
            highlight=False,
        )
    failed = [item for summary in summaries.values() for item in summary.failed]
    if failed:
        for key, error in failed[:20]:
            _err.print(f"[red]failed[/red] {key}: {error}", highlight=False)
        _err.print(
            f"{len(failed)} window(s) failed; run again with --retry-failed to take them again",
            highlight=False,
        )
        raise SystemExit(EXIT_FAILED_WINDOWS)


@main.command("verify")
@connection_options
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="a backfill's output directory",
)
@_STATE_OPTION
@click.option(
    "--sample",
    type=click.IntRange(min=1),
    default=None,
    help="also read N random windows again from the API and compare them with the files",
)
def verify_command(out_dir: Path, state: Path | None, sample: int | None, **kwargs: Any) -> None:
    """Check a backfill's files and audio against its manifest (exit 0: all hold, 1: problems)."""
    connection = _connection(kwargs)
    manifest_path = state or out_dir / "_manifest.sqlite"
    if not manifest_path.is_file():
        _usage(f"no manifest at {manifest_path}: give a backfill's --out (or its --state)")
    report = _run(_verify(connection, out_dir, manifest_path, sample))
    _print_verify(report)
    raise SystemExit(EXIT_OK if report.ok else EXIT_FAILED_WINDOWS)


# -- running ---------------------------------------------------------------------------


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine and turn errors into sentences and exit codes."""
    try:
        return asyncio.run(coroutine)
    except KeyboardInterrupt:
        _fail(
            EXIT_INTERRUPTED,
            "interrupted: finished windows are kept; run the same command again to resume",
        )
    except AuthenticationError as exc:
        _fail(
            EXIT_AUTH, f"authentication failed: check VOICEAPI_TOKEN (or --token) ({exc.message})"
        )
    except PermissionDeniedError as exc:
        _fail(
            EXIT_AUTH,
            f"permission denied: is this machine's IP allowed for the token? ({exc.message})",
        )
    except NotFoundError as exc:
        _fail(
            EXIT_API, f"not found: check VOICEAPI_BASE_URL, it should end in /api/v2/ ({exc.url})"
        )
    except TransportError as exc:
        _fail(
            EXIT_UNREACHABLE,
            f"cannot reach the API: check VOICEAPI_BASE_URL and the network ({exc})",
        )
    except OutputLockedError as exc:
        _fail(EXIT_LOCKED, f"{exc}; wait for it to end (or stop it), then run again")
    except ManifestError as exc:
        _fail(EXIT_OUTPUT, str(exc))
    except OutputError as exc:
        _fail(
            EXIT_OUTPUT,
            f"{exc} (finished windows are kept; fix this and run the same command again)",
        )
    except VoiceAPIError as exc:
        _fail(EXIT_API, f"the API failed: {exc}")
    except _DemoError as exc:
        _fail(EXIT_UNREACHABLE, str(exc))


def _fail(code: int, message: str) -> NoReturn:
    _err.print(f"[bold red]error:[/bold red] {message}", highlight=False, soft_wrap=True)
    raise SystemExit(code)


def _usage(message: str) -> NoReturn:
    raise click.UsageError(message)


def _validate_range(report: Report, start: Bound, end: Bound, zone: str, max_days: int) -> None:
    """Check the range before anything starts (at most ``max_days`` windows are made)."""
    try:
        plan_windows(report, start, end, zone, max_days=max_days)
    except (ValueError, TypeError) as exc:
        _usage(_in_flag_words(str(exc)))


def _check_order(start: Bound | None, end: Bound | None) -> None:
    """Refuse whole days given the wrong way round, in the command's words."""
    if start is None or end is None:
        return
    if isinstance(start, dt.datetime) or isinstance(end, dt.datetime):
        return  # the planner compares them in the account's zone
    if end < start:
        _usage(f"--to {end} is before --from {start}: swap them")


def _minutes(value: int, option: str) -> dt.timedelta:
    try:
        return dt.timedelta(minutes=value)
    except OverflowError:
        raise ValueError(f"{option} {value} is too large: use a number of minutes") from None


_SETTING_NAMES = {
    "format": "--format",
    "timezone": "--timezone",
    "compression": "compression (--gzip)",
    "export_schema": "export schema version",
}


def _mismatch_message(exc: SettingsMismatchError, out_dir: Path) -> str:
    changes = "; ".join(
        f"{_SETTING_NAMES.get(c.name, c.name)} was {c.pinned}, now {c.requested}"
        for c in exc.changes
    )
    return (
        f"{out_dir} holds {exc.report} written with other settings: {changes}. "
        "Run with the dataset's settings, or add --rebuild to rewrite every window"
    )


_FLAG_WORDS = (
    (re.compile(r"\bstart="), "--from "),
    (re.compile(r"\bend="), "--to "),
    (re.compile(r"^end \("), "--to ("),
    (re.compile(r"before start \("), "before --from ("),
    (re.compile(r"\(max_days\)"), f"({_MAX_DAYS_SETTING})"),
    (re.compile(r"the dates the planner supports"), "the supported dates"),
    (re.compile(r"^lookback of ([\d,]+) days"), r"--lookback-days \1"),
    (re.compile(r"^base_url\b"), "--base-url"),
    (re.compile(r"\btoken="), "--token"),
)
"""The library's words for a setting, and the command's flag for it."""


def _in_flag_words(message: str) -> str:
    """Name the command's own flags where a library message names its arguments."""
    for pattern, flag in _FLAG_WORDS:
        message = pattern.sub(flag, message)
    return message


@contextlib.asynccontextmanager
async def _client(connection: Connection) -> AsyncIterator[VoiceClient]:
    """Open a client for the connection; with --demo, start the simulator first."""
    settings: dict[str, Any] = {
        "timezone": connection.timezone,
        "retry": RetryPolicy(attempts=connection.max_attempts),
        "max_days": connection.max_days,
    }
    if connection.rate_limit is not None:
        settings["rate_limit"] = connection.rate_limit
    if connection.per_page is not None:
        settings["per_page"] = connection.per_page
    if connection.demo:
        async with _demo_simulator(connection) as base_url:
            config = ClientConfig(base_url=base_url, token=DEMO_TOKEN, **settings)
            async with VoiceClient(config) as client:
                yield client
        return
    if not connection.base_url:
        _usage("no API address: set VOICEAPI_BASE_URL or pass --base-url (or use --demo)")
    if not connection.token:
        _usage("no token: set VOICEAPI_TOKEN or pass --token (or use --demo)")
    try:
        config = ClientConfig(base_url=connection.base_url, token=connection.token, **settings)
    except ValueError as exc:
        _usage(_in_flag_words(str(exc)))
    async with VoiceClient(config) as client:
        yield client


class _DemoError(Exception):
    """The demo's simulator process did not start."""


@contextlib.asynccontextmanager
async def _demo_simulator(connection: Connection) -> AsyncIterator[str]:
    """Run the simulator in a process of its own; yield its base URL; stop it at the end.

    It is ``python -m voiceapi_async.testing serve`` (``voiceapi serve-fake``) on a free
    port, with the demo's seed, token and faults, in the connection's time zone; its
    volume is the simulator's default. A process of its own keeps the simulator's
    memory and CPU out of the command's.
    """
    zone = connection.timezone
    assert zone is not None  # _zoned gave it one
    command = [
        *(sys.executable, "-m", "voiceapi_async.testing", "serve", "--port", "0"),
        *("--seed", str(DEMO_SEED), "--token", DEMO_TOKEN, "--faults", "demo"),
        *("--timezone", zone),
    ]
    with tempfile.TemporaryFile() as log:
        process = await asyncio.create_subprocess_exec(
            *command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log
        )
        try:
            assert process.stdout is not None
            try:
                line = await asyncio.wait_for(process.stdout.readline(), DEMO_START_TIMEOUT)
            except TimeoutError:
                line = b""
            base_url = line.decode(errors="replace").strip()
            if not base_url.startswith("http"):
                log.seek(0)
                said = log.read().decode(errors="replace").strip().splitlines()
                raise _DemoError(
                    f"the demo's simulator did not start ({shlex.join(command[1:])}"
                    + (f": {said[-1]})" if said else ")")
                )
            whose = (
                " (the simulator's: --demo uses it unless --timezone is given)"
                if connection.simulator_zone
                else ""
            )
            _err.print(
                f"demo: simulator at {base_url} (process {process.pid}); the simulated "
                f"account's time zone is {zone}{whose}",
                highlight=False,
                soft_wrap=True,
            )
            yield base_url
        finally:
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 10)
                except TimeoutError:  # pragma: no cover - the simulator stops on SIGTERM
                    process.kill()
                    await process.wait()


async def _stream_to_stdout(
    connection: Connection, report: Report, start: Bound, end: Bound, fmt: str
) -> None:
    out = sys.stdout.buffer
    export_format = get_format(fmt, timezone=connection.timezone)
    async with _client(connection) as client:
        stream = (
            client.calls(start, end) if report is Report.CALLS else client.recordings(start, end)
        )
        writer = export_format.open(out, report)
        window: Window | None = None
        held: list[Record] = []  # one window's records, sorted as its partition would be
        async with stream:
            async for page in stream.pages():
                if page.window != window and held:
                    writer.write(sort_records(held))
                    out.flush()
                    held = []
                window = page.window
                held.extend(page.records)
        writer.write(sort_records(held))
        writer.close()  # only after a complete stream: a failed export writes no header
        out.flush()


async def _backfill(
    connection: Connection,
    plans: dict[Report, list[Window]],
    out_dir: Path,
    export_format: ExportFormat,
    state: Path | None,
    concurrency: int,
    retry_failed: bool,
    force: set[str],
    *,
    rebuild: bool = False,
    verify_files: bool = False,
    audio: bool = False,
    bulk: bool = True,
) -> dict[Report, Summary]:
    summaries: dict[Report, Summary] = {}
    manifest_path = state or out_dir / "_manifest.sqlite"
    total = sum(len(windows) for windows in plans.values())
    with (
        OutputLock(out_dir) as lock,
        Manifest(manifest_path) as manifest,
        _progress(total) as progress,
    ):
        async with _client(connection) as client:
            progress.attach(client)
            runners = {
                report: Backfill(
                    client,
                    manifest,
                    export_format,
                    out_dir,
                    concurrency=concurrency,
                    retry_failed=retry_failed,
                    force=force,
                    progress=progress,
                    timezone=connection.timezone,
                    rebuild=rebuild,
                    verify=verify_files,
                    lock=lock,
                    audio=audio,
                    bulk=bulk,
                )
                for report in plans
            }
            for report, windows in plans.items():
                runners[report].check(windows)  # every report, before any request
            for report, windows in plans.items():
                summaries[report] = await runners[report].run(windows)
    return summaries


async def _verify(
    connection: Connection, out_dir: Path, manifest_path: Path, sample: int | None
) -> VerifyReport:
    """Check the dataset under its lock, so that no backfill writes while it is read."""
    with OutputLock(out_dir), Manifest(manifest_path) as manifest:
        report = verify(out_dir, manifest)
        if sample is not None:
            pins = [manifest.settings(name) for name in report.reports]
            zones = sorted({p["timezone"] for p in pins if "timezone" in p})
            if zones:  # the dataset's days are cut in its pinned zone
                connection = attrs.evolve(connection, timezone=zones[0], simulator_zone=False)
            else:
                connection, _ = _zoned(connection)
            async with _client(connection) as client:
                report.merge(await verify_sample(client, out_dir, manifest, sample))
    return report


# -- progress and summary --------------------------------------------------------------


class _ProgressReporter:
    """Progress bars on a terminal; one plain line a window otherwise."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.records = 0
        self.audio_files = 0
        self.audio_bytes = 0
        self.client: VoiceClient | None = None
        self.console = _err
        self.bars: Progress | None = None
        self.task: TaskID | None = None
        if self.console.is_terminal:
            self.bars = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(
                    "windows · {task.fields[records]:,} records · {task.fields[rate]:,.0f}/s"
                ),
                TextColumn("{task.fields[audio]}"),
                TextColumn("· retries {task.fields[retries]} · 429s {task.fields[limited]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
            )
            self.task = self.bars.add_task(
                "backfill", total=total, records=0, rate=0.0, retries=0, limited=0, audio=""
            )
        self.started = dt.datetime.now(dt.UTC)

    def attach(self, client: VoiceClient) -> None:
        self.client = client

    def __enter__(self) -> _ProgressReporter:
        if self.bars is not None:
            self.bars.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self.bars is not None:
            self.bars.stop()

    def planned(self, total: int, skipped: int) -> None:
        self._advance(skipped)
        if skipped and self.bars is None:
            self.console.print(f"{skipped} window(s) already done: skipped", highlight=False)

    def window_done(self, window: Window, records: int) -> None:
        self.records += records
        self._advance(1)
        if self.bars is None:
            self.console.print(
                f"[{self.done}/{self.total}] {window.key}: {records} records{self._audio_text()}",
                highlight=False,
            )

    def audio_file(self, result: AudioResult) -> None:
        """Count a recording's audio file that was downloaded."""
        if result.status is AudioStatus.DOWNLOADED:
            self.audio_files += 1
            self.audio_bytes += result.size
            self._advance(0)

    def _audio_text(self) -> str:
        if not self.audio_files:
            return ""
        return f" · audio so far {self.audio_files:,} files, {_size(self.audio_bytes)}"

    def window_failed(self, window: Window, error: BaseException) -> None:
        self._advance(1)
        if self.bars is None:
            self.console.print(
                f"[{self.done}/{self.total}] {window.key}: FAILED: {error}", highlight=False
            )

    def _advance(self, count: int) -> None:
        self.done += count
        if self.bars is None or self.task is None:
            return
        elapsed = (dt.datetime.now(dt.UTC) - self.started).total_seconds() or 1e-9
        stats = self.client.stats if self.client else None
        self.bars.update(
            self.task,
            advance=count,
            records=self.records,
            rate=self.records / elapsed,
            retries=stats.retries if stats else 0,
            limited=stats.rate_limited if stats else 0,
            audio=self._audio_text(),
        )


def _progress(total: int) -> _ProgressReporter:
    return _ProgressReporter(total)


def _size(count: int) -> str:
    """Bytes as text: ``512 B``, ``3.4 MB``, ``1.2 GB`` (powers of 1000)."""
    size = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{count} B" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def _print_summary(summaries: dict[Report, Summary], *, audio: bool = False) -> None:
    """Print one row a report (and a total) to stdout; with audio, its files and bytes."""
    table = Table(title="backfill summary")
    audio_columns = ("audio files", "audio bytes") if audio else ()
    for column in (
        "report",
        "windows",
        "written",
        "skipped",
        "repaired",
        "failed",
        "records",
        "pages",
        "retries",
        "429s",
        "elapsed",
        "records/s",
        *audio_columns,
    ):
        table.add_column(column, justify="left" if column == "report" else "right")
    rows: list[tuple[str, Summary]] = [(str(r), s) for r, s in summaries.items()]
    if len(rows) > 1:
        rows.append(("total", _total(list(summaries.values()))))
    for report, s in rows:
        table.add_row(
            str(report),
            str(s.windows),
            str(s.written),
            str(s.skipped),
            str(s.repaired),
            str(len(s.failed)),
            f"{s.records:,}",
            f"{s.pages:,}",
            str(s.retries),
            str(s.rate_limited),
            f"{s.elapsed:.1f}s",
            f"{s.records_per_second:,.0f}",
            *((f"{s.audio_files:,}", _size(s.audio_bytes)) if audio else ()),
        )
    out = Console()
    if not out.is_terminal:
        out = Console(width=160)
    out.print(table)
    total = _total(list(summaries.values()))
    out.print(_quota_line(total), highlight=False)


def _quota_line(summary: Summary) -> str:
    """The run's requests, per 1,000 records, and the page size the server applied."""
    line = f"requests: {summary.requests:,}"
    if summary.requests_per_1000_records is not None:
        line += f" ({summary.requests_per_1000_records:.1f} per 1,000 records)"
    return line + f"; page size: {summary.per_page or 'unknown'}"


_DUCKDB_READERS = {
    "parquet": "read_parquet({})",
    "csv": "read_csv({})",
    "jsonl": "read_json({}, format = 'newline_delimited')",
}


def _print_files(
    out_dir: Path,
    export_format: ExportFormat,
    reports: list[Report],
    *,
    manifest: bool = True,
    audio: bool = False,
) -> None:
    """Print where a backfill's files are, and a DuckDB line that counts their records."""
    extension = export_format.extension
    rows: list[tuple[str, str]] = []
    for report in reports:
        days = sum(1 for _ in (out_dir / str(report)).glob(f"date=*/part-0.{extension}"))
        rows.append((f"{report}/date=YYYY-MM-DD/part-0.{extension}", f"{days:,} days"))
    if audio:
        files = sum(1 for path in (out_dir / "audio").rglob("*") if path.is_file())
        rows.append(("audio/date=YYYY-MM-DD/", f"{files:,} audio files"))
    if manifest:
        rows.append(("_manifest.sqlite", f"the manifest: voiceapi verify --out {out_dir}"))
    width = max(len(name) for name, _ in rows)
    click.echo(f"files in {out_dir}{os.sep}:")
    for name, what in rows:
        click.echo(f"  {name:<{width}}  {what}")
    needs = "" if importlib.util.find_spec("duckdb") else " (pip install duckdb first)"
    click.echo(f"count their records with DuckDB{needs}:")
    click.echo(f"  {duckdb_command(out_dir, export_format.name, extension, reports)}")


def duckdb_command(out_dir: Path, fmt: str, extension: str, reports: list[Report]) -> str:
    """Return a shell line that prints each report's record count in ``out_dir`` with DuckDB.

    It runs this interpreter (by its path relative to the working directory when it
    lies under it, as ``make demo``'s ``.venv/bin/python`` does; else ``python``).
    """
    selects = []
    for report in reports:
        files = f"{out_dir}/{report}/*/*.{extension}".replace("'", "''")
        source = _DUCKDB_READERS[fmt].format(f"'{files}'")
        selects.append(f"SELECT '{report}' AS report, count(*) AS records FROM {source}")
    sql = " UNION ALL ".join(selects) + (" ORDER BY report" if len(selects) > 1 else "")
    python_sql = '"' + sql.replace("\\", "\\\\").replace('"', '\\"') + '"'
    code = f"import duckdb; duckdb.sql({python_sql}).show()"
    shell_code = '"' + re.sub(r'([\\"$`])', r"\\\1", code) + '"'
    return f"{shlex.quote(_python())} -c {shell_code}"


def _python() -> str:
    """This interpreter, relative to the working directory when under it; else ``python``."""
    try:
        return str(Path(sys.executable).relative_to(Path.cwd()))
    except ValueError:
        return "python"


def _total(summaries: list[Summary]) -> Summary:
    return Summary(
        windows=sum(s.windows for s in summaries),
        written=sum(s.written for s in summaries),
        skipped=sum(s.skipped for s in summaries),
        repaired=sum(s.repaired for s in summaries),
        failed=[item for s in summaries for item in s.failed],
        records=sum(s.records for s in summaries),
        pages=sum(s.pages for s in summaries),
        retries=sum(s.retries for s in summaries),
        rate_limited=sum(s.rate_limited for s in summaries),
        requests=sum(s.requests for s in summaries),
        per_page=max((s.per_page or 0 for s in summaries), default=0) or None,
        elapsed=sum(s.elapsed for s in summaries),
        audio_files=sum(s.audio_files for s in summaries),
        audio_bytes=sum(s.audio_bytes for s in summaries),
        audio_present=sum(s.audio_present for s in summaries),
        audio_unsigned=sum(s.audio_unsigned for s in summaries),
    )


def _print_verify(report: VerifyReport) -> None:
    """Print one row a report, then one row a problem, to stdout; a verdict to stderr."""
    table = Table(title="verify")
    columns = ["report", "partitions", "records", "sampled", "problems"]
    audio = any(check.audio_files for check in report.reports.values())
    if audio:
        columns[4:4] = ["audio files", "audio bytes"]
    for column in columns:
        table.add_column(column, justify="left" if column == "report" else "right")
    for name, check in sorted(report.reports.items()):
        problems = sum(p.report == name for p in report.problems)
        table.add_row(
            name,
            str(check.partitions),
            f"{check.records:,}",
            str(check.sampled),
            *((f"{check.audio_files:,}", _size(check.audio_bytes)) if audio else ()),
            str(problems),
        )
    out = Console()
    if not out.is_terminal:
        out = Console(width=160)
    out.print(table)
    if report.problems:
        found = Table(title="problems")
        for column in ("report", "file or window", "problem", "detail"):
            found.add_column(column, overflow="fold")
        for problem in report.problems:
            found.add_row(problem.report, problem.path, problem.kind, problem.detail)
        out.print(found)
        _err.print(f"{len(report.problems)} problem(s) found", highlight=False)
    else:
        _err.print("every partition holds", highlight=False)
