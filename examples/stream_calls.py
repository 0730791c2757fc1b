"""Stream the call log of a date range: one line per call, then a short summary.

Against your account, configure the client through the environment::

    export VOICEAPI_BASE_URL=https://portal.example.com/api/v2/
    export VOICEAPI_TOKEN=...                  # the account's API token
    export VOICEAPI_TIMEZONE=Asia/Kolkata      # the account's time zone
    python examples/stream_calls.py --from 2024-03-01 --to 2024-03-07

Both days are inclusive and read in the account's time zone; calls come day by
day, in the server's order within a day. The other
``VOICEAPI_*`` settings (``VOICEAPI_MAX_IN_FLIGHT``, ``VOICEAPI_RATE_LIMIT``...)
apply too; see ``ClientConfig.from_env``.

Without an account, ``--demo`` starts the bundled simulator in this process (a
faithful local Voice API with a few injected faults, which the client retries)
and points the client at it::

    python examples/stream_calls.py --demo --from 2024-03-01 --to 2024-03-02

Exit status: 0 on success, 1 when the API fails, 2 for bad arguments or settings.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import sys
from collections.abc import Sequence
from decimal import Decimal

from demo_client import open_client, parse_range_args, range_parser

from voiceapi_async import Call, ClientConfig, VoiceAPIError


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, ClientConfig | None]:
    """Read ``--from``, ``--to`` and ``--demo``; without ``--demo``, the environment too."""
    parser = range_parser("Stream the call log of a date range and summarise it.")
    return parse_range_args(parser, argv)


def describe(call: Call) -> str:
    """Return one line for a call: when it ended, outcome, seconds, charges, who, id."""
    ended = call.end_at.isoformat() if call.end_at is not None else "-"
    seconds = int(call.duration.total_seconds())
    return (
        f"{ended}  {call.status:<11} {seconds:>6}s  {call.charges:>9}  "
        f"{call.call_from} -> {call.call_to}  {call.id}"
    )


class Summary:
    """Running totals over the calls seen."""

    def __init__(self) -> None:
        self.count = 0
        self.by_status: collections.Counter[str] = collections.Counter()
        self.charges = Decimal(0)
        self.requests = 0
        self.retries = 0

    def add(self, call: Call) -> None:
        """Count one call."""
        self.count += 1
        self.by_status[str(call.status)] += 1
        self.charges += call.charges

    def lines(self) -> list[str]:
        """Return the summary as printable lines."""
        statuses = ", ".join(f"{status} {n}" for status, n in self.by_status.most_common())
        return [
            f"calls: {self.count}",
            f"by status: {statuses or '-'}",
            f"total charges: {self.charges}",
            f"requests: {self.requests} ({self.retries} retried)",
        ]


async def stream_calls(config: ClientConfig | None, start: dt.date, end: dt.date) -> Summary:
    """Print every call of ``start``..``end`` as it arrives; return the totals."""
    summary = Summary()
    async with open_client(config) as client:
        async for call in client.calls(start, end):
            print(describe(call))
            summary.add(call)
        summary.requests, summary.retries = client.stats.requests, client.stats.retries
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; return the exit status."""
    args, config = parse_args(argv)
    try:
        summary = asyncio.run(stream_calls(config, args.start, args.end))
    except VoiceAPIError as exc:  # messages never contain the token
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print("\n".join(["", *summary.lines()]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
