"""Requests per record: the client against the fewest requests the server's page cap allows.

Against the real API the token's quota (1,000 requests a minute) bounds a backfill,
so what counts is requests, not seconds. For each page cap (15, the framework's
default; 100; 1,000) and each dataset (sparse: 8 calls a day; dense: 1,000), the
client reads every day of the range and the simulator counts the requests. The
minimum is the records divided by the cap, rounded up (one request per full page of
the whole range). "Day by day" is how the client read before windows were sized to
the data: one stream a day, 100 a page asked for. Every run is checked against the
ground truth.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import Awaitable, Callable

from _harness import arguments, check, log, publish, table, verdict

from voiceapi_async import RetryPolicy, VoiceClient
from voiceapi_async.testing import VoiceSimulator, run_simulator

TOKEN = "bench-quota-token"
TIMEZONE = "Asia/Kolkata"
CAPS = (15, 100, 1000)
DATASETS = {"sparse": 8, "dense": 1000}
TARGETS = {"sparse": 2.0, "dense": 1.25}
QUOTA = 1000
FIRST = dt.date(2024, 1, 1)

Reader = Callable[[VoiceSimulator, dt.date], Awaitable[set[str]]]


def client(sim: VoiceSimulator, *, per_page: int | None = None) -> VoiceClient:
    return VoiceClient(
        base_url=sim.base_url,
        token=TOKEN,
        timezone=TIMEZONE,
        rate_limit=0,
        retry=RetryPolicy(attempts=3, wait_initial=0.0, wait_max=0.01, wait_jitter=0.0),
        max_days=4000,
        per_page=per_page,
    )


async def sized(sim: VoiceSimulator, last: dt.date) -> set[str]:
    """Today's client: one stream over the range, the page size learned."""
    async with client(sim) as voice:
        return {call.id for call in await voice.calls(FIRST, last).collect()}


async def day_by_day(sim: VoiceSimulator, last: dt.date) -> set[str]:
    """The client before: a stream a day, 100 records a page asked for."""
    ids: set[str] = set()
    async with client(sim, per_page=100) as voice:
        day = FIRST
        while day <= last:
            ids |= {call.id for call in await voice.calls(day, day).collect()}
            day += dt.timedelta(days=1)
    return ids


async def measure(reader: Reader, cap: int, calls_per_day: int, days: int) -> tuple[int, int]:
    """Return (records, requests) of one read of the range."""
    last = FIRST + dt.timedelta(days=days - 1)
    async with run_simulator(
        token=TOKEN, calls_per_day=calls_per_day, per_page_max=cap, rate_limit=0
    ) as sim:
        ids = await reader(sim, last)
        truth = sim.ids_between(
            "calls", dt.datetime.combine(FIRST, dt.time.min), dt.datetime.combine(last, dt.time.max)
        )
        requests = len(sim.observed.report_requests())
    check(f"{reader.__name__}, cap {cap}, {calls_per_day}/day", truth, len(ids), ids)
    return len(ids), requests


async def main() -> None:
    options = arguments(__doc__)
    days = {"sparse": 10, "dense": 2} if options.quick else {"sparse": 90, "dense": 14}
    rows = []
    verdicts = []
    for name, calls_per_day in DATASETS.items():
        for cap in CAPS:
            records, requests = await measure(sized, cap, calls_per_day, days[name])
            _, before = await measure(day_by_day, cap, calls_per_day, days[name])
            minimum = math.ceil(records / cap)
            ratio = requests / minimum
            ok = ratio <= TARGETS[name]
            verdicts.append(ok)
            log(f"{name} cap {cap}: {requests} requests for {records} records (min {minimum})")
            rows.append(
                f"{name} ({calls_per_day}/day, {days[name]} days) | {cap:,} | {records:,} | "
                f"{minimum:,} | {requests:,} | {ratio:.2f}x | {before:,} | "
                f"{before / minimum:.2f}x | {records * QUOTA // requests:,} | "
                f"{records * QUOTA // before:,}"
            )
    header = (
        "dataset | page cap | records | minimum requests | requests | x minimum | "
        "day by day | x minimum | records/min at 1,000 req/min | day by day"
    )
    targets = [
        verdict(f"{name} data: at most {TARGETS[name]:g}x the minimum for every cap", ok)
        for name, ok in (
            (name, all(verdicts[n * len(CAPS) : (n + 1) * len(CAPS)]))
            for n, name in enumerate(DATASETS)
        )
    ]
    facts = [f"- Ranges: sparse {days['sparse']} days, dense {days['dense']} days from {FIRST}"]
    publish(
        __doc__,
        facts,
        [table(header, rows), "\n".join(targets)],
        packages=["aiohttp"],
        quick=options.quick,
    )
    if not all(verdicts):
        raise SystemExit(1)


if __name__ == "__main__":
    asyncio.run(main())
