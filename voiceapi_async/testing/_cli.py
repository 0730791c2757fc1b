"""``python -m voiceapi_async.testing serve``: the simulator as a standalone server.

The command prints the base URL it serves on stdout (one line, flushed, once it is
listening), a summary on stderr, and runs until SIGINT or SIGTERM, then shuts down
cleanly and exits 0. Bad arguments exit 2 with argparse's usage message; a setting
the simulator rejects exits 2 with a one-line message on stderr.

:func:`serve` is the reusable part for other front-ends (``voiceapi serve-fake``):
it takes a :class:`~voiceapi_async.testing.SimulatorConfig`, an address and a
``ready`` callback, and blocks until a signal stops it. :func:`serve_main` runs the
``serve`` options alone under another program name, and :func:`add_serve_arguments`
and :func:`config_from_args` let another parser offer the same options.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from voiceapi_async.testing._faults import FAULT_KINDS, STORAGE_FAULT_KINDS

if TYPE_CHECKING:
    from voiceapi_async.testing._config import SimulatorConfig
    from voiceapi_async.testing._server import VoiceSimulator

PROG = "python -m voiceapi_async.testing"
"""How the command names itself in usage and error messages."""

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_SERVE_DESCRIPTION = (
    "Serve the Voice API simulator. Prints the base URL once listening and runs until "
    "SIGINT or SIGTERM."
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


def _announce(simulator: VoiceSimulator) -> None:
    config = simulator.config
    print(simulator.base_url, flush=True)
    print(
        f"Voice API simulator: shape {config.shape.value}, token {config.token!r}, "
        f"seed {config.seed}, {config.calls_per_day} calls a day in {config.timezone}. "
        "Ctrl+C to stop.",
        file=sys.stderr,
        flush=True,
    )


def serve(
    config: SimulatorConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    ready: Callable[[VoiceSimulator], object] | None = _announce,
) -> None:
    """Serve a simulator until SIGINT or SIGTERM, then shut it down cleanly.

    Blocks the calling thread (run it from the main thread so signals reach it).

    Args:
        config: how the simulator behaves.
        host: the address to listen on.
        port: the port to listen on; 0 picks a free one.
        ready: called with the simulator once it is listening (its ``base_url`` is
            set); the default prints the base URL on stdout and a summary on stderr.

    Raises:
        OSError: the address cannot be bound.
    """
    with contextlib.suppress(KeyboardInterrupt):  # where signal handlers are unavailable
        asyncio.run(_serve(config, host, port, ready))


async def _serve(
    config: SimulatorConfig,
    host: str,
    port: int,
    ready: Callable[[VoiceSimulator], object] | None,
) -> None:
    from voiceapi_async.testing._server import run_simulator

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal() -> None:
        stop.set()
        for sig in _STOP_SIGNALS:  # a second signal falls back to the default action
            loop.remove_signal_handler(sig)

    installed = []
    for sig in _STOP_SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows, non-main thread
            loop.add_signal_handler(sig, on_signal)
            installed.append(sig)
    try:
        async with run_simulator(config, host=host, port=port) as simulator:
            if ready is not None:
                ready(simulator)
            await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def _count(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more, not {value}")
        return value

    return parse


def _port(text: str) -> int:
    value = _count(0)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be 0 to 65535, not {value}")
    return value


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    return value


def _milliseconds(text: str) -> float:
    value = _number(text)
    if not value >= 0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def _seconds(text: str) -> float:
    value = _number(text)
    if not 0 < value < float("inf"):  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


def _sizes(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    try:
        sizes = (int(low), int(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a size or a range of sizes in bytes (like 4096-2000000): {text!r}"
        ) from None
    if not 1 <= sizes[0] <= sizes[1]:
        raise argparse.ArgumentTypeError(f"must be MIN-MAX with 1 <= MIN <= MAX, not {text}")
    return sizes


def _probability(text: str) -> float:
    value = _number(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a probability from 0 to 1, not {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the command's argument parser (``serve`` and its options)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="A local, faithful Voice API for tests, benchmarks and demos.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_serve_arguments(
        commands.add_parser(
            "serve",
            help="serve the simulator until Ctrl+C",
            description=_SERVE_DESCRIPTION,
        )
    )
    return parser


def add_serve_arguments(serve_parser: argparse.ArgumentParser) -> None:
    """Add the ``serve`` options (``--port``, ``--shape``, faults...) to a parser."""
    add = serve_parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    add(
        "--port",
        type=_port,
        default=8080,
        help="port to listen on, 0 for a free one (default: %(default)s)",
    )
    add(
        "--shape",
        type=str.lower,
        choices=("a", "b", "c"),
        default="b",
        help="response shape: a (bare list), b (paginator), c (resource) (default: b)",
    )
    add("--token", default="demo-token", help="the one API token accepted (default: %(default)s)")
    add(
        "--seed",
        type=int,
        default=0,
        metavar="N",
        help="seed of the dataset, the record order and the faults (default: %(default)s)",
    )
    add(
        "--timezone",
        default="Asia/Kolkata",
        metavar="ZONE",
        help="the account's IANA time zone (default: %(default)s)",
    )
    add(
        "--calls-per-day",
        type=_count(0),
        default=200,
        metavar="N",
        help="average calls a day (default: %(default)s)",
    )
    add(
        "--rate-limit",
        type=_count(0),
        default=1000,
        metavar="N",
        help="requests a window (--rate-window) per token before 429, 0 for none "
        "(default: %(default)s)",
    )
    add(
        "--rate-window",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="the rate-limit window; scale it down with --rate-limit to shorten "
        "experiments (default: %(default)s)",
    )
    add(
        "--rate-mode",
        choices=("fixed", "sliding"),
        default="fixed",
        help="fixed windows from a token's first request, or a sliding window "
        "(default: %(default)s)",
    )
    add(
        "--per-page-max",
        type=_count(1),
        default=100,
        metavar="N",
        help="the largest page size applied (default: %(default)s)",
    )
    add(
        "--audio-size",
        type=_sizes,
        default=(2048, 34 * 1024),
        metavar="MIN[-MAX]",
        help="audio file sizes in bytes, one size or a range (default: 2048-34816)",
    )
    add(
        "--audio-expiry",
        type=_count(0),
        default=3600,
        metavar="SECONDS",
        help="seconds a presigned audio URL stays valid (default: %(default)s)",
    )
    faults = serve_parser.add_argument_group(
        "faults",
        "Probabilities per request, from 0 to 1 (default: 0). "
        "These override the preset chosen with --faults.",
    )
    faults.add_argument(
        "--faults",
        choices=("none", "demo"),
        default="none",
        help="preset: none, or demo (a little of everything but stalls, 15 ms latency)",
    )
    faults.add_argument(
        "--latency-ms",
        type=_milliseconds,
        metavar="MS",
        help="median added latency in milliseconds, log-normally spread (default: 0)",
    )
    faults.add_argument(
        "--storage-latency-ms",
        type=_milliseconds,
        metavar="MS",
        help="median added latency of audio downloads in milliseconds (default: 0)",
    )
    faults.add_argument(
        "--storage-bandwidth",
        type=_milliseconds,
        metavar="BYTES",
        help="bytes a second each audio download is sent at, 0 for no limit (default: 0)",
    )
    for kind in FAULT_KINDS + STORAGE_FAULT_KINDS:
        faults.add_argument(
            f"--{kind.replace('_', '-')}",
            type=_probability,
            metavar="P",
            help=_FAULT_HELP.get(kind),
        )


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    """Build the simulator's configuration from parsed ``serve`` arguments.

    Raises:
        ValueError: a setting the simulator rejects (an unknown time zone, say).
    """
    import attrs
    import pendulum

    from voiceapi_async.testing._config import SimulatorConfig
    from voiceapi_async.testing._faults import Faults

    try:
        pendulum.timezone(args.timezone)
    except ValueError:
        raise ValueError(f"unknown time zone: {args.timezone!r}") from None
    faults = Faults.demo() if args.faults == "demo" else Faults()
    overrides: dict[str, float] = {
        kind: getattr(args, kind)
        for kind in (*FAULT_KINDS, *STORAGE_FAULT_KINDS)
        if getattr(args, kind) is not None
    }
    for setting in ("latency_ms", "storage_latency_ms", "storage_bandwidth"):
        if getattr(args, setting) is not None:
            overrides[setting] = getattr(args, setting)
    if overrides:
        faults = attrs.evolve(faults, **overrides)
    return SimulatorConfig(
        seed=args.seed,
        timezone=args.timezone,
        calls_per_day=args.calls_per_day,
        token=args.token,
        shape=args.shape,
        per_page_max=args.per_page_max,
        rate_limit=args.rate_limit,
        rate_window=args.rate_window,
        rate_mode=args.rate_mode,
        audio_size=args.audio_size,
        audio_expiry=args.audio_expiry,
        faults=faults,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m voiceapi_async.testing``; return the exit status.

    Bad arguments exit 2 through argparse (``SystemExit``).
    """
    args = build_parser().parse_args(argv)
    return _run(args, f"{PROG} {args.command}")


def serve_main(argv: Sequence[str] | None = None, *, prog: str = f"{PROG} serve") -> int:
    """Run the ``serve`` options alone (for ``voiceapi serve-fake``); return the exit status.

    Args:
        argv: the options, without a command name (``["--port", "0"]``).
        prog: the name usage and error messages give the command.
    """
    parser = argparse.ArgumentParser(prog=prog, description=_SERVE_DESCRIPTION)
    add_serve_arguments(parser)
    return _run(parser.parse_args(argv), prog)


def _run(args: argparse.Namespace, prog: str) -> int:
    try:
        config = config_from_args(args)
    except ValueError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    try:
        serve(config, host=args.host, port=args.port)
    except OSError as error:
        where = f"{args.host}:{args.port}"
        print(f"{prog}: error: cannot listen on {where}: {error}", file=sys.stderr)
        return 1
    return 0
