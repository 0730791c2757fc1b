"""The examples' shared ``--demo`` support: a client for your account, or for a local simulator.

``open_client(ClientConfig.from_env())`` opens a client for the account the
``VOICEAPI_*`` variables describe; ``open_client(None)`` first starts the bundled
simulator in this process (a faithful local Voice API with a few injected faults,
which the client retries) and points the client at it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator

from voiceapi_async import ClientConfig, RetryPolicy, VoiceClient

DEMO_SEED = 7
"""The simulator's seed with ``--demo``: the same seed serves the same records."""
DEMO_TIMEZONE = "Asia/Kolkata"
"""The simulated account's time zone."""
DEMO_CALLS_PER_DAY = 300
"""Average calls a day in the simulator (each day varies by +-20%); recordings are
about 30% of that."""
DEMO_TOKEN = "demo-token"
"""The one token the simulator accepts."""
DEMO_RETRY = RetryPolicy(wait_initial=0.05, wait_max=0.5, wait_jitter=0.05)
"""A local simulator answers at once: short backoffs keep the demo quick."""


@contextlib.asynccontextmanager
async def open_client(config: ClientConfig | None) -> AsyncIterator[VoiceClient]:
    """Yield a client for ``config``; for None, start a simulator and point one at it."""
    if config is not None:
        async with VoiceClient(config) as client:
            yield client
        return
    # Imported here: the simulator (aiohttp's server side) is only needed for --demo.
    from voiceapi_async.testing import Faults, run_simulator

    async with run_simulator(
        seed=DEMO_SEED,
        timezone=DEMO_TIMEZONE,
        calls_per_day=DEMO_CALLS_PER_DAY,
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
