"""The simulator's command, on click: ``serve`` (``voiceapi serve-fake`` is the same).

Imported only when the command runs (click comes with the ``cli`` extra), never by
``import voiceapi_async.testing``.
"""

from __future__ import annotations

import math
import zoneinfo
from collections.abc import Callable
from typing import Any, TypeVar

import attrs
import click

from voiceapi_async.testing._cli import serve
from voiceapi_async.testing._config import (
    DEFAULT_CALLS_PER_DAY,
    DEFAULT_TIMEZONE,
    DEFAULT_TOKEN,
    SimulatorConfig,
)
from voiceapi_async.testing._faults import FAULT_KINDS, STORAGE_FAULT_KINDS, Faults
from voiceapi_async.testing._storage import DEFAULT_AUDIO_SIZE

SERVE_HELP = (
    "Serve the Voice API simulator: a faithful local Voice API with a deterministic "
    "dataset. Prints the base URL on stdout once listening and runs until SIGINT or "
    "SIGTERM. Fault probabilities (from 0 to 1) override the preset chosen with --faults."
)
_FAULT_HELP = {
    "server_error": "a JSON 500, 502 or 503",
    "reset": "the connection cut half-way through the body",
    "truncated": "a complete response whose JSON ends early",
    "error_in_200": 'a {"status": "ERROR"} body with HTTP 200',
    "html_error": "a proxy's HTML 502 page",
    "stall": "part of the body, then nothing for 30 s",
    "storage_error": "an audio download answers an S3 500 or 503",
    "storage_reset": "an audio download cut half-way through the body",
    "storage_stall": "half an audio file, then nothing for 30 s",
}
_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _not_negative(ctx: click.Context, param: click.Parameter, value: float | None) -> Any:
    """Refuse a negative number, and ``nan`` (which click's FloatRange lets through)."""
    if value is not None and (math.isnan(value) or value < 0):
        raise click.BadParameter(f"must be 0 or more, not {value}", ctx, param)
    return value


def _sizes(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, int]:
    """Read ``MIN[-MAX]`` bytes, both at least 1."""
    low, _, high = value.partition("-")
    try:
        sizes = (int(low), int(high or low))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a size or a range of sizes in bytes (like 4096-2000000)", ctx, param
        ) from None
    if not 1 <= sizes[0] <= sizes[1]:
        raise click.BadParameter(f"must be MIN-MAX with 1 <= MIN <= MAX, not {value}", ctx, param)
    return sizes


def _zone(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Refuse a name that is not an IANA time zone."""
    try:
        zoneinfo.ZoneInfo(value)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        raise click.BadParameter(
            f"{value!r} is not a time zone: use an IANA name such as Asia/Kolkata", ctx, param
        ) from None
    return value


_PROBABILITY = click.FloatRange(0.0, 1.0)
_F = TypeVar("_F", bound=Callable[..., Any])


def _fault_options(command: _F) -> _F:
    for kind in reversed((*FAULT_KINDS, *STORAGE_FAULT_KINDS)):
        command = click.option(
            f"--{kind.replace('_', '-')}",
            kind,
            type=_PROBABILITY,
            default=None,
            metavar="P",
            help=f"how often: {_FAULT_HELP[kind]}",
        )(command)
    return command


def config_from_options(options: dict[str, Any]) -> SimulatorConfig:
    """Build the simulator's configuration from the ``serve`` options' values.

    ``options`` maps each option's name (``calls_per_day``, ``server_error``...) to
    its value, as click passes them; ``host`` and ``port`` are ignored.
    """
    faults = Faults.demo() if options["faults"] == "demo" else Faults()
    names = (*FAULT_KINDS, *STORAGE_FAULT_KINDS, "latency_ms", "storage_latency_ms")
    overrides = {name: options[name] for name in (*names, "storage_bandwidth")}
    given = {name: value for name, value in overrides.items() if value is not None}
    if given:
        faults = attrs.evolve(faults, **given)
    return SimulatorConfig(
        seed=options["seed"],
        timezone=options["timezone"],
        calls_per_day=options["calls_per_day"],
        token=options["token"],
        shape=options["shape"],
        per_page_max=options["per_page_max"],
        rate_limit=options["rate_limit"],
        rate_mode=options["rate_mode"],
        audio_size=options["audio_size"],
        audio_expiry=options["audio_expiry"],
        faults=faults,
    )


@click.command("serve", help=SERVE_HELP, context_settings=_CONTEXT)
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="port to listen on, 0 for a free one",
)
@click.option(
    "--shape",
    type=click.Choice(["a", "b", "c"], case_sensitive=False),
    default="b",
    show_default=True,
    help="response shape: a (bare list), b (paginator), c (resource)",
)
@click.option(
    "--token", default=DEFAULT_TOKEN, show_default=True, help="the one API token accepted"
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    metavar="N",
    help="seed of the dataset, the record order and the faults",
)
@click.option(
    "--timezone",
    callback=_zone,
    metavar="ZONE",
    default=DEFAULT_TIMEZONE,
    show_default=True,
    help="the simulated account's IANA time zone",
)
@click.option(
    "--calls-per-day",
    type=click.IntRange(min=0),
    default=DEFAULT_CALLS_PER_DAY,
    show_default=True,
    metavar="N",
    help="average calls a day (recordings: about 30% of that)",
)
@click.option(
    "--rate-limit",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    metavar="N",
    help="requests a minute per token before 429, 0 for none",
)
@click.option(
    "--rate-mode",
    type=click.Choice(["fixed", "sliding"]),
    default="fixed",
    show_default=True,
    help="fixed windows from a token's first request, or a sliding window",
)
@click.option(
    "--per-page-max",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    metavar="N",
    help="the largest page size applied",
)
@click.option(
    "--audio-size",
    callback=_sizes,
    metavar="MIN[-MAX]",
    default="-".join(map(str, DEFAULT_AUDIO_SIZE)),
    show_default=True,
    help="audio file sizes in bytes, one size or a range",
)
@click.option(
    "--audio-expiry",
    type=click.IntRange(min=0),
    default=3600,
    show_default=True,
    metavar="SECONDS",
    help="seconds a presigned audio URL stays valid",
)
@click.option(
    "--faults",
    type=click.Choice(["none", "demo"]),
    default="none",
    show_default=True,
    help="preset: none, or demo (a little of everything but stalls, 15 ms latency)",
)
@click.option(
    "--latency-ms",
    type=float,
    callback=_not_negative,
    default=None,
    metavar="MS",
    help="median added latency in milliseconds, log-normally spread [default: 0]",
)
@click.option(
    "--storage-latency-ms",
    type=float,
    callback=_not_negative,
    default=None,
    metavar="MS",
    help="median added latency of audio downloads in milliseconds [default: 0]",
)
@click.option(
    "--storage-bandwidth",
    type=float,
    callback=_not_negative,
    default=None,
    metavar="BYTES",
    help="bytes a second each audio download is sent at, 0 for no limit [default: 0]",
)
@_fault_options
def serve_cli(host: str, port: int, **options: Any) -> None:
    """Serve the simulator until SIGINT or SIGTERM (see ``SERVE_HELP``)."""
    config = config_from_options(options)  # every option was checked as it was read
    try:
        serve(config, host=host, port=port)
    except OSError as error:
        raise click.ClickException(f"cannot listen on {host}:{port}: {error}") from None


@click.group(
    "simulator",
    context_settings=_CONTEXT,
    help="A local, faithful Voice API for tests, benchmarks and demos.",
)
def simulator_cli() -> None:
    """``python -m voiceapi_async.testing``: the simulator's commands."""


simulator_cli.add_command(serve_cli)
