"""Client benchmark: paging throughput, CPU per page and streaming memory.

Method, contenders, columns and targets: benchmarks/README.md, section "client".
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import math
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import _harness as harness
import aiohttp
import orjson

from voiceapi_async import Call, ClientConfig, VoiceClient, make_converter

SEED = 0
LATENCY_MS = 50.0
PER_PAGE = 100
CALLS_PER_DAY = 4_000
MEMORY_CALLS_PER_DAY = 1_000
FIRST_DAY = dt.date(2024, 3, 1)
MEMORY_FIRST_DAY = dt.date(2021, 1, 1)
TARGET_OF_IDEAL, TARGET_SPEEDUP, TARGET_CPU_RATIO, TARGET_MEMORY_RATIO = 0.90, 14.0, 1.2, 1.2
DEFAULTS = ClientConfig(base_url="http://localhost/", token="x", timezone=harness.TIMEZONE)
SEQUENTIAL = "sequential, one request at a time (like existing wrappers)"
ORACLE = f"oracle: every page known up front, {DEFAULTS.max_in_flight} in flight"
FULL, QUICK = (30, (1, 100, 1_000)), (3, (1, 10, 100))
"""The days read for throughput, and the days streamed for memory."""
CONVERTER = make_converter(harness.TIMEZONE)


class InFlightMeter:
    """Requests in flight, from aiohttp tracing (request start to response headers)."""

    def __init__(self) -> None:
        self.current = self.peak = self.requests = 0
        self.busy_seconds = 0.0  # requests in flight, integrated over time
        self._last = time.perf_counter()

    async def _advance(self, change: int, *_: object) -> None:
        now = time.perf_counter()
        self.busy_seconds += self.current * (now - self._last)
        self._last, self.current = now, self.current + change
        self.peak, self.requests = max(self.peak, self.current), self.requests + (change < 0)

    def trace_config(self) -> aiohttp.TraceConfig:
        """Return a trace config that feeds this meter."""
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(functools.partial(self._advance, +1))
        trace.on_request_end.append(functools.partial(self._advance, -1))
        trace.on_request_exception.append(functools.partial(self._advance, -1))
        return trace

    def session(self, limit: int = 100) -> aiohttp.ClientSession:
        """Return a plain session traced by this meter, ``limit`` connections (0: no limit)."""
        connector = aiohttp.TCPConnector(limit=limit)
        return aiohttp.ClientSession(connector=connector, trace_configs=[self.trace_config()])


@dataclass(frozen=True)
class Job:
    """One range of calls on one simulator, with each day's page count (from the truth)."""

    base_url: str
    days: list[dt.date]
    last_pages: dict[dt.date, int]


@dataclass(frozen=True)
class Entry:
    """One contender: label, limit on requests in flight (None: unbounded), reader."""

    label: str
    limit: int | None
    read: Callable[[Job, InFlightMeter], Coroutine[Any, Any, list[str]]]


async def get_page(
    session: aiohttp.ClientSession, job: Job, day: dt.date, page: int
) -> tuple[list[Call], int]:
    """Fetch and convert one page the plain way; return its calls and the day's last page."""
    query = harness.page_query(day, page, PER_PAGE)
    url = job.base_url + "voice/calls"
    async with session.get(url, params=query, headers=harness.HEADERS) as reply:
        reply.raise_for_status()
        data = orjson.loads(await reply.read())["data"]
    return CONVERTER.structure_rows(data["data"], Call, path="$.data.data"), data["last_page"]


async def sequential(job: Job, meter: InFlightMeter) -> list[str]:
    ids: list[str] = []
    async with meter.session() as session:
        for day in job.days:
            page, last_page = 1, 1
            while page <= last_page:
                calls, last_page = await get_page(session, job, day, page)
                ids.extend(call.id for call in calls)
                page += 1
    return ids


async def unbounded_gather(job: Job, meter: InFlightMeter) -> list[str]:
    ids: list[str] = []

    async def read_day(session: aiohttp.ClientSession, day: dt.date) -> None:
        calls, last_page = await get_page(session, job, day, 1)
        ids.extend(call.id for call in calls)
        pages = range(2, last_page + 1)
        for calls, _ in await asyncio.gather(*(get_page(session, job, day, n) for n in pages)):
            ids.extend(call.id for call in calls)

    async with meter.session(limit=0) as session:  # aiohttp's default 100 would bound it
        await asyncio.gather(*(read_day(session, day) for day in job.days))
    return ids


async def oracle(job: Job, meter: InFlightMeter) -> list[str]:
    """Fetch every page of every day through one semaphore at the client's default limit."""
    ids, slots = list[str](), asyncio.Semaphore(DEFAULTS.max_in_flight)

    async def fetch(session: aiohttp.ClientSession, day: dt.date, page: int) -> None:
        async with slots:
            calls, _ = await get_page(session, job, day, page)
        ids.extend(call.id for call in calls)

    async with meter.session(DEFAULTS.max_in_flight) as session:
        pages = [(day, n) for day in job.days for n in range(1, job.last_pages[day] + 1)]
        await asyncio.gather(*(fetch(session, day, n) for day, n in pages))
    return ids


def voice_client(n: int = DEFAULTS.max_in_flight, days: int = DEFAULTS.max_windows) -> Entry:
    """Return this client, streaming with ``async for``, ``n`` in flight and ``days`` at once."""

    async def read(job: Job, meter: InFlightMeter) -> list[str]:
        ids, trace = list[str](), meter.trace_config()
        limits = {"max_in_flight": n, "max_windows": days, **harness.CLIENT}
        async with VoiceClient(base_url=job.base_url, trace_configs=[trace], **limits) as client:
            async for call in client.calls(job.days[0], job.days[-1]):
                ids.append(call.id)
        return ids

    label = f"voiceapi_async, {n} in flight, {days} days at once"
    defaults = (n, days) == (DEFAULTS.max_in_flight, DEFAULTS.max_windows)
    return Entry(label + " (defaults)" * defaults, n, read)


def entries() -> list[Entry]:
    """Return the contenders: the client at its defaults first, the oracle last."""
    limits = [(n, days) for n in (32, 64) for days in (DEFAULTS.max_windows, n)]
    return [
        voice_client(),
        *(voice_client(n, days) for n, days in limits),
        Entry(SEQUENTIAL, 1, sequential),
        Entry("unbounded `asyncio.gather` over all days", None, unbounded_gather),
        Entry(ORACLE, DEFAULTS.max_in_flight, oracle),
    ]


@dataclass(frozen=True)
class Run:
    """One run of one contender (or, field by field, its rounds' median).

    CPU: this process's per second of the run and per page, the simulator's per
    second; ``latency``: mean seconds from request start to response headers.
    """

    pages_per_second: float
    records_per_second: float
    peak_in_flight: float
    mean_in_flight: float
    latency: float
    client_cpu: float
    cpu_per_page: float
    simulator_cpu: float


def timed_run(entry: Entry, job: Job, sim: harness.Server, truth: set[str]) -> Run:
    """Run one contender once and check what it got against the ground truth."""
    meter = InFlightMeter()
    ids, used = harness.timed(lambda: asyncio.run(entry.read(job, meter)), sim)
    harness.check(entry.label, truth, len(ids), set(ids))
    pages, seconds = sum(job.last_pages.values()), used.seconds
    return Run(
        pages / seconds,
        len(ids) / seconds,
        meter.peak,
        meter.busy_seconds / seconds,
        meter.busy_seconds / meter.requests,
        used.cpu / seconds,
        used.cpu / pages,
        used.server_cpu / seconds,
    )


def measure_throughput(days: int, rounds: int, contenders: list[Entry]) -> dict[str, Run]:
    """Run the contenders in interleaved rounds; return each one's medians by label."""
    data = harness.dataset(seed=SEED, calls_per_day=CALLS_PER_DAY)
    by_day = harness.ids_by_day(data, FIRST_DAY, FIRST_DAY + dt.timedelta(days=days - 1))
    truth = set().union(*by_day.values())
    job_pages = {day: max(1, math.ceil(len(ids) / PER_PAGE)) for day, ids in by_day.items()}
    options = {"latency_ms": LATENCY_MS, "per_page_max": PER_PAGE}
    with harness.simulator(seed=SEED, calls_per_day=CALLS_PER_DAY, **options) as sim:
        job = Job(sim.base_url, list(by_day), job_pages)
        harness.log(f"simulator at {sim.base_url}; warming its caches")
        asyncio.run(voice_client(64, 64).read(job, InFlightMeter()))
        runs = harness.interleave(
            contenders,
            rounds,
            lambda entry: timed_run(entry, job, sim, truth),
            lambda run: f"{run.pages_per_second:,.0f} pages/s, {run.cpu_per_page * 1e3:.2f} ms CPU",
        )
    return harness.medians(runs)


async def memory_child(base_url: str, days: str) -> dict[str, Any]:
    """In a fresh process: stream ``days`` days, discarding each record."""
    last, count = MEMORY_FIRST_DAY + dt.timedelta(days=int(days) - 1), 0
    async with VoiceClient(base_url=base_url, **harness.CLIENT) as client:
        before = harness.memory_kib("VmHWM")
        async for _call in client.calls(MEMORY_FIRST_DAY, last):
            count += 1
    return {"days": int(days), "records": count, "before_kib": before}


def measure_memory(memory_days: tuple[int, ...]) -> list[dict[str, Any]]:
    """Stream each range in a fresh interpreter; check its count; return what each reported."""
    data, results = harness.dataset(seed=SEED, calls_per_day=MEMORY_CALLS_PER_DAY), []
    options = {"seed": SEED, "calls_per_day": MEMORY_CALLS_PER_DAY, "per_page_max": PER_PAGE}
    with harness.simulator(**options) as sim:
        for days in memory_days:
            harness.log(f"memory: {days} days in a fresh subprocess")
            results.append(harness.run_child(__file__, sim.base_url, days))
            last = MEMORY_FIRST_DAY + dt.timedelta(days=days - 1)
            truth = set().union(*harness.ids_by_day(data, MEMORY_FIRST_DAY, last).values())
            harness.check(f"memory, {days} days", truth, results[-1]["records"])
    return results


def throughput_table(runs: dict[str, Run], contenders: list[Entry]) -> str:
    latency, bound = runs[SEQUENTIAL].latency, 1 / harness.mean_latency(LATENCY_MS)
    baseline, oracle_cpu = runs[SEQUENTIAL].pages_per_second, runs[ORACLE].cpu_per_page
    rows = []
    for entry in contenders:
        run, limit, rate = runs[entry.label], entry.limit, runs[entry.label].pages_per_second
        of_ideal = "n/a" if limit is None else f"{rate * latency / limit:.2f}x"
        of_bound = "n/a" if limit is None else f"{rate / (limit * bound):.2f}x"
        rows.append(
            f"{entry.label} | {limit or '∞'} | {run.peak_in_flight:.0f} / {run.mean_in_flight:.1f} "
            f"| {rate:,.0f} | {run.records_per_second:,.0f} | {of_ideal} | {of_bound} "
            f"| {rate / baseline:.1f}x | {run.latency * 1e3:.1f} ms | {run.client_cpu:.0%} "
            f"| {run.cpu_per_page * 1e3:.2f} ms | {run.cpu_per_page / oracle_cpu:.2f}x "
            f"| {run.simulator_cpu:.0%}"
        )
    default = runs[contenders[0].label]
    per_page = default.records_per_second / default.pages_per_second
    for limit in sorted({entry.limit for entry in contenders if entry.limit and entry.limit > 1}):
        ideal = limit / latency
        rows.append(
            f"ideal at {limit} in flight ({limit} / {latency * 1e3:.1f} ms) | {limit} "
            f"| {limit} / {limit} | {ideal:,.0f} | {ideal * per_page:,.0f} | 1.00x "
            f"| {ideal / (limit * bound):.2f}x | {ideal / baseline:.1f}x | | | | |"
        )
    return harness.table(
        "contender | limit | peak / mean in flight | pages/s | records/s | x ideal "
        "| x added-latency bound | x sequential | latency seen | client CPU "
        "| client CPU per page | x oracle's | simulator CPU",
        rows,
    )


def memory_table(results: list[dict[str, Any]]) -> str:
    rows = [
        f"{now['days']} days | {now['records']:,} | {now['seconds']:.1f} "
        f"| {now['before_kib'] / 1024:.1f} MiB | {now['peak_kib'] / 1024:.1f} MiB "
        f"| {'' if before is None else format(now['peak_kib'] / before['peak_kib'], '.2f') + 'x'}"
        for before, now in zip([None, *results], results, strict=False)
    ]
    return harness.table(
        "range | records | seconds | RSS before streaming | peak RSS | peak / previous", rows
    )


def verdicts(runs: dict[str, Run], default: Entry, memory: list[dict[str, Any]]) -> str:
    run, oracle_run, limit = runs[default.label], runs[ORACLE], default.limit or 1
    ideal, rate = limit / runs[SEQUENTIAL].latency, run.pages_per_second
    of_ideal, speedup = rate / ideal, rate / runs[SEQUENTIAL].pages_per_second
    cpu_ratio = run.cpu_per_page / oracle_run.cpu_per_page
    bare = rate * harness.mean_latency(LATENCY_MS) / limit
    small, large = memory[-2], memory[-1]
    memory_ratio = large["peak_kib"] / small["peak_kib"]
    slots, inflation = run.mean_in_flight / limit, runs[SEQUENTIAL].latency / run.latency
    return "\n".join(
        [
            harness.verdict(
                f"Throughput at the defaults: {of_ideal:.0%} of the ideal ({rate:,.0f} of "
                f"{ideal:,.0f} pages/s; the oracle {oracle_run.pages_per_second / ideal:.0%}; "
                f"{bare:.0%} of the added latency alone); target ≥ {TARGET_OF_IDEAL:.0%}",
                of_ideal >= TARGET_OF_IDEAL,
            ),
            harness.verdict(
                f"Speed-up over the sequential baseline: {speedup:.1f}x; target about "
                f"{TARGET_SPEEDUP:g}x",
                speedup >= TARGET_SPEEDUP,
            ),
            harness.verdict(
                f"Client CPU per page at the defaults: **{cpu_ratio:.2f}x** the oracle's "
                f"({run.cpu_per_page * 1e3:.2f} vs {oracle_run.cpu_per_page * 1e3:.2f} ms); "
                f"target ≤ {TARGET_CPU_RATIO}x",
                cpu_ratio <= TARGET_CPU_RATIO,
            ),
            harness.verdict(
                f"Peak memory, {large['records']:,} vs {small['records']:,} records: "
                f"{memory_ratio:.2f}x; target ≤ {TARGET_MEMORY_RATIO}x",
                memory_ratio <= TARGET_MEMORY_RATIO,
            ),
            f"\nWhere the gap to the ideal goes (Little's law): {of_ideal:.0%} of the ideal = "
            f"slot use {run.mean_in_flight:.1f} / {limit} = {slots:.0%} x latency inflation "
            f"{runs[SEQUENTIAL].latency * 1e3:.1f} / {run.latency * 1e3:.1f} ms = {inflation:.0%} "
            f"(= {slots * inflation:.0%}; the rest is the run's start and end).",
        ]
    )


def main() -> int:
    args = harness.arguments(__doc__, rounds=3)
    if args.child:
        harness.child_result(memory_child(*args.child))
        return 0
    (days, memory_days), contenders = QUICK if args.quick else FULL, entries()
    runs = measure_throughput(days, args.rounds, contenders)
    memory = measure_memory(memory_days)
    facts = [
        f"- Throughput: {days} days from {FIRST_DAY}, {CALLS_PER_DAY:,} calls a day, "
        f"{PER_PAGE} a page, {LATENCY_MS:g} ms median added latency (mean "
        f"{harness.mean_latency(LATENCY_MS) * 1e3:.1f} ms); median of {args.rounds} round(s)",
        f"- Memory: {', '.join(map(str, memory_days))} days of {MEMORY_CALLS_PER_DAY:,} calls "
        f"from {MEMORY_FIRST_DAY}",
    ]
    sections = [
        "## Throughput and CPU\n\n" + throughput_table(runs, contenders),
        "## Memory\n\n" + memory_table(memory),
        "## Verdict\n\n" + verdicts(runs, contenders[0], memory),
    ]
    packages = ("aiohttp", "orjson", "msgspec", "cattrs", "pendulum", "stamina")
    sharing = "the simulator and the client"
    harness.publish(__doc__, facts, sections, packages=packages, sharing=sharing, quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
