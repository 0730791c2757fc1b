"""What the examples share: their range flags, and a client for your account or a simulator.

``open_client(ClientConfig.from_env())`` opens a client for the account the
``VOICEAPI_*`` variables describe; ``open_client(None)`` first starts the bundled
simulator in this process (a faithful local Voice API with a few injected faults,
which the client retries, at its default volume) and points the client at it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import sys
from collections.abc import AsyncIterator, Sequence

import stamina

from voiceapi_async import ClientConfig, RetryPolicy, VoiceClient

DEMO_SEED = 7
"""The simulator's seed with ``--demo``: the same seed serves the same records."""
DEMO_TIMEZONE = "Asia/Kolkata"
"""The simulated account's time zone."""
DEMO_TOKEN = "demo-token"
"""The one token the simulator accepts."""
DEMO_RETRY = RetryPolicy(wait_initial=0.05, wait_max=0.5, wait_jitter=0.05)
"""A local simulator answers at once: short backoffs keep the demo quick."""


@contextlib.asynccontextmanager
async def open_client(config: ClientConfig | None) -> AsyncIterator[VoiceClient]:
    """Yield a client for ``config``; for None, start a simulator and point one at it."""
    # Retries are logged with `logging` even where structlog is installed: an
    # unconfigured structlog prints to stdout, where these examples print their data.
    stamina.instrumentation.set_on_retry_hooks([stamina.instrumentation.LoggingOnRetryHook])
    if config is not None:
        async with VoiceClient(config) as client:
            yield client
        return
    # Imported here: the simulator (aiohttp's server side) is only needed for --demo.
    from voiceapi_async.testing import Faults, run_simulator

    async with run_simulator(
        seed=DEMO_SEED,
        timezone=DEMO_TIMEZONE,
        token=DEMO_TOKEN,
        faults=Faults.demo(),
    ) as simulator:
        print(f"demo: simulator at {simulator.base_url}", file=sys.stderr)
        # from_env still applies the other VOICEAPI_* settings (limits, page size).
        demo_config = ClientConfig.from_env(
            base_url=simulator.base_url, token=DEMO_TOKEN, timezone=DEMO_TIMEZONE, retry=DEMO_RETRY
        )
        async with VoiceClient(demo_config) as client:
            yield client


def range_parser(description: str) -> argparse.ArgumentParser:
    """Return a parser with ``--from``, ``--to`` (inclusive days) and ``--demo``."""
    parser = argparse.ArgumentParser(description=description)
    for flag, dest in (("--from", "start"), ("--to", "end")):
        parser.add_argument(
            flag, dest=dest, required=True, type=dt.date.fromisoformat, metavar="YYYY-MM-DD"
        )
    parser.add_argument(
        "--demo", action="store_true", help="start the bundled simulator and read from it"
    )
    return parser


def parse_range_args(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None
) -> tuple[argparse.Namespace, ClientConfig | None]:
    """Parse ``argv``; without ``--demo``, read the client's settings from the environment.

    Returns the arguments and the settings (None with ``--demo``). Exits with status 2
    and a message when the range is backwards or a ``VOICEAPI_*`` setting is missing.
    """
    args = parser.parse_args(argv)
    if args.end < args.start:
        parser.error(f"--to {args.end} is before --from {args.start}")
    if args.demo:
        return args, None
    try:
        return args, ClientConfig.from_env()
    except ValueError as exc:  # names the missing or malformed VOICEAPI_* variable
        parser.error(f"{exc} (or pass --demo to try the bundled simulator)")
