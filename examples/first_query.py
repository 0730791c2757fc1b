"""A first query: one day of calls from the bundled simulator, no account needed.

    .venv/bin/python examples/first_query.py

Against your account, pass its API root, its token and its time zone instead of the
simulator's (the account's settings page shows the time zone; days are read in it).
"""

from __future__ import annotations

import asyncio

from voiceapi_async import VoiceClient
from voiceapi_async.testing import run_simulator

TIMEZONE = "Asia/Kolkata"
"""The simulated account's time zone."""


async def main() -> None:
    """Serve the simulator, read the calls of 1 March 2024 from it, print a few."""
    async with (
        run_simulator(timezone=TIMEZONE) as simulator,
        VoiceClient(
            base_url=simulator.base_url,  # yours: "https://portal.example.com/api/v2/"
            token=simulator.config.token,  # yours: the account's API token
            timezone=TIMEZONE,  # yours: the account's time zone
        ) as client,
    ):
        calls = await client.calls("2024-03-01", "2024-03-01").collect()
    print(f"{len(calls)} calls ended on 2024-03-01 ({TIMEZONE})")
    for call in calls[:3]:
        print(call.end_at, call.status, call.duration.in_words(), call.charges)


if __name__ == "__main__":
    asyncio.run(main())
