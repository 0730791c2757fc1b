"""Client benchmark: paging throughput, CPU per page and streaming memory.

Throughput and CPU: one 30-day range of calls (4,000 a day, 100 a page: about 1,200
pages) from a simulator adding 50 ms of latency per request, read by this client at
its defaults and at higher limits, a sequential loop, an unbounded ``gather``, an
oracle that knows every page up front, and the ideal (Little's law). Memory: peak RSS
of a fresh process streaming 1,000, 100,000 and 1,000,000 calls.

Targets at the defaults: ≥ 90% of the ideal pages/s (about 14x the sequential
loop); client CPU per page ≤ 1.2x the oracle's; peak memory for 1,000,000 records
≤ 1.2x that for 100,000.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import _harness as harness
import aiohttp
import orjson

from voiceapi_async import Call, ClientConfig, VoiceClient, make_converter
from voiceapi_async.testing import Faults

SEED = 0
LATENCY_MS = 50.0
PER_PAGE = 100
CALLS_PER_DAY = 4_000
MEMORY_CALLS_PER_DAY = 1_000
FIRST_DAY = dt.date(2024, 3, 1)
MEMORY_FIRST_DAY = dt.date(2021, 1, 1)
TARGET_OF_IDEAL = 0.90
TARGET_SPEEDUP = 14.0
TARGET_CPU_RATIO = 1.2
TARGET_MEMORY_RATIO = 1.2
DEFAULTS = ClientConfig(base_url="http://localhost/", token="x")
CLIENT: dict[str, Any] = {"token": harness.TOKEN, "timezone": harness.TIMEZONE, "rate_limit": 0}
SEQUENTIAL = "sequential, one request at a time (like existing wrappers)"
ORACLE = f"oracle: every page known up front, {DEFAULTS.max_in_flight} in flight"


@dataclass(frozen=True)
class Plan:
    """The days read for throughput, the rounds, and the days streamed for memory."""

    days: int
    rounds: int
    memory_days: tuple[int, ...]


FULL = Plan(days=30, rounds=3, memory_days=(1, 100, 1_000))
QUICK = Plan(days=3, rounds=1, memory_days=(1, 10, 100))


class InFlightMeter:
    """Requests in flight, from aiohttp tracing (request start to response headers)."""

    def __init__(self) -> None:
        self.current = self.peak = self.requests = 0
        self.busy_seconds = 0.0
        """The integral of requests in flight over time."""
        self._last = time.perf_counter()

    def _advance(self, change: int) -> None:
        now = time.perf_counter()
        self.busy_seconds += self.current * (now - self._last)
        self._last, self.current = now, self.current + change
        self.peak = max(self.peak, self.current)
        self.requests += int(change < 0)

    def trace_config(self) -> aiohttp.TraceConfig:
        """Return a trace config that feeds this meter."""
        trace = aiohttp.TraceConfig()

        async def started(*_: object) -> None:
            self._advance(+1)

        async def ended(*_: object) -> None:
            self._advance(-1)

        trace.on_request_start.append(started)
        trace.on_request_end.append(ended)
        trace.on_request_exception.append(ended)
        return trace

    def session(self, limit: int = 100) -> aiohttp.ClientSession:
        """Return a plain session traced by this meter, ``limit`` connections (0: no limit)."""
        connector = aiohttp.TCPConnector(limit=limit)
        return aiohttp.ClientSession(connector=connector, trace_configs=[self.trace_config()])


# --- the contenders -------------------------------------------------------------------


@dataclass
class Fetched:
    """The records one run got, and their distinct ids."""

    records: int = 0
    ids: set[str] = field(default_factory=set)

    def take(self, calls: list[Call]) -> None:
        """Count one page of calls."""
        self.records += len(calls)
        self.ids.update(call.id for call in calls)


@dataclass(frozen=True)
class Job:
    """One range of calls on one simulator, with each day's page count (from the truth)."""

    base_url: str
    days: list[dt.date]
    last_pages: dict[dt.date, int]


Reader = Callable[[Job, InFlightMeter], Coroutine[Any, Any, Fetched]]


@dataclass(frozen=True)
class Entry:
    """One contender: label, limit on requests in flight (None: unbounded), reader."""

    label: str
    limit: int | None
    read: Reader


CONVERTER = make_converter(harness.TIMEZONE)


async def get_page(
    session: aiohttp.ClientSession, job: Job, day: dt.date, page: int
) -> tuple[list[Call], int]:
    """Fetch and convert one page the plain way; return its calls and the day's last page."""
    query = harness.page_query(day, page, PER_PAGE)
    async with session.get(
        job.base_url + "voice/calls", params=query, headers=harness.HEADERS
    ) as reply:
        reply.raise_for_status()
        data = orjson.loads(await reply.read())["data"]
    return CONVERTER.structure_rows(data["data"], Call, path="$.data.data"), data["last_page"]


async def sequential(job: Job, meter: InFlightMeter) -> Fetched:
    fetched = Fetched()
    async with meter.session() as session:
        for day in job.days:
            page, last_page = 1, 1
            while page <= last_page:
                calls, last_page = await get_page(session, job, day, page)
                fetched.take(calls)
                page += 1
    return fetched


async def unbounded_gather(job: Job, meter: InFlightMeter) -> Fetched:
    fetched = Fetched()

    async def read_day(session: aiohttp.ClientSession, day: dt.date) -> None:
        calls, last_page = await get_page(session, job, day, 1)
        fetched.take(calls)
        pages = range(2, last_page + 1)
        for calls, _ in await asyncio.gather(*(get_page(session, job, day, n) for n in pages)):
            fetched.take(calls)

    async with meter.session(limit=0) as session:  # aiohttp's default 100 would bound it
        await asyncio.gather(*(read_day(session, day) for day in job.days))
    return fetched


def oracle(limit: int) -> Reader:
    """Return a reader fetching every page of every day through one semaphore of ``limit``."""

    async def read(job: Job, meter: InFlightMeter) -> Fetched:
        fetched, slots = Fetched(), asyncio.Semaphore(limit)

        async def fetch(session: aiohttp.ClientSession, day: dt.date, page: int) -> None:
            async with slots:
                calls, _ = await get_page(session, job, day, page)
            fetched.take(calls)

        async with meter.session(limit) as session:
            pages = [(day, n) for day in job.days for n in range(1, job.last_pages[day] + 1)]
            await asyncio.gather(*(fetch(session, day, n) for day, n in pages))
        return fetched

    return read


def voice_client(n: int = DEFAULTS.max_in_flight, days: int = DEFAULTS.max_windows) -> Entry:
    """Return this client, streaming with ``async for``, ``n`` in flight and ``days`` at once."""

    async def read(job: Job, meter: InFlightMeter) -> Fetched:
        fetched, trace = Fetched(), meter.trace_config()
        limits = {"max_in_flight": n, "max_windows": days, **CLIENT}
        async with VoiceClient(base_url=job.base_url, trace_configs=[trace], **limits) as client:
            async for call in client.calls(job.days[0], job.days[-1]):
                fetched.records += 1
                fetched.ids.add(call.id)
        return fetched

    label = f"voiceapi_async, {n} in flight, {days} days at once"
    if (n, days) == (DEFAULTS.max_in_flight, DEFAULTS.max_windows):
        label += " (defaults)"
    return Entry(label, n, read)


def entries() -> list[Entry]:
    """Return the contenders: the client at its defaults first, the oracle last."""
    windows, n0 = DEFAULTS.max_windows, DEFAULTS.max_in_flight
    limits = [(n, days) for n in (32, 64) for days in (windows, n)]
    return [
        voice_client(),
        *(voice_client(n, days) for n, days in limits),
        Entry(SEQUENTIAL, 1, sequential),
        Entry("unbounded `asyncio.gather` over all days", None, unbounded_gather),
        Entry(ORACLE, n0, oracle(n0)),
    ]


# --- throughput -----------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """What one run of one contender measured (or, field by field, its rounds' median)."""

    pages_per_second: float
    records_per_second: float
    peak_in_flight: float
    mean_in_flight: float
    latency: float
    """Mean seconds from request start to response headers."""
    client_cpu: float
    """This process's CPU seconds per second of the run."""
    cpu_per_page: float
    """This process's CPU seconds per page."""
    simulator_cpu: float


def timed_run(entry: Entry, job: Job, sim: harness.Server, truth: set[str]) -> Run:
    """Run one contender once and check what it got against the ground truth."""
    meter = InFlightMeter()
    sim_cpu, cpu, started = sim.cpu_seconds(), harness.cpu_seconds(), time.perf_counter()
    fetched = asyncio.run(entry.read(job, meter))
    seconds = time.perf_counter() - started
    cpu, sim_cpu = harness.cpu_seconds() - cpu, sim.cpu_seconds() - sim_cpu
    harness.check(entry.label, truth, fetched.records, fetched.ids)
    pages = sum(job.last_pages.values())
    return Run(
        pages_per_second=pages / seconds,
        records_per_second=fetched.records / seconds,
        peak_in_flight=meter.peak,
        mean_in_flight=meter.busy_seconds / seconds,
        latency=meter.busy_seconds / meter.requests,
        client_cpu=cpu / seconds,
        cpu_per_page=cpu / pages,
        simulator_cpu=sim_cpu / seconds,
    )


def measure_throughput(plan: Plan, contenders: list[Entry]) -> dict[str, Run]:
    """Run the contenders in interleaved rounds; return each one's medians by label."""
    days = [FIRST_DAY + dt.timedelta(days=n) for n in range(plan.days)]
    by_day = harness.ids_by_day(
        harness.dataset(seed=SEED, calls_per_day=CALLS_PER_DAY), days[0], days[-1]
    )
    truth = set().union(*by_day.values())
    job_pages = {day: max(1, math.ceil(len(ids) / PER_PAGE)) for day, ids in by_day.items()}
    options = {"latency_ms": LATENCY_MS, "per_page_max": PER_PAGE}
    with harness.simulator(seed=SEED, calls_per_day=CALLS_PER_DAY, **options) as sim:
        job = Job(sim.base_url, days, job_pages)
        harness.log(f"simulator at {sim.base_url}; warming its caches")
        asyncio.run(voice_client(64, 64).read(job, InFlightMeter()))
        runs = harness.interleave(
            contenders,
            plan.rounds,
            lambda entry: timed_run(entry, job, sim, truth),
            lambda run: (
                f"{run.pages_per_second:,.0f} pages/s, {run.cpu_per_page * 1e3:.2f} ms CPU a page"
            ),
        )
    names = [f.name for f in dataclasses.fields(Run)]
    return {
        label: Run(
            **{name: statistics.median(getattr(run, name) for run in found) for name in names}
        )
        for label, found in runs.items()
    }


def mean_added_latency() -> float:
    """Return the mean of the simulator's log-normal added latency, in seconds."""
    return LATENCY_MS / 1000 * math.exp(Faults(latency_ms=LATENCY_MS).latency_spread ** 2 / 2)


# --- memory ---------------------------------------------------------------------------


def memory_child(base_url: str, days: int) -> None:
    """In a fresh process: stream ``days`` days, discarding each record; print a JSON line."""

    async def stream() -> tuple[int, int]:
        last, count = MEMORY_FIRST_DAY + dt.timedelta(days=days - 1), 0
        async with VoiceClient(base_url=base_url, **CLIENT) as client:
            before = harness.memory_kib("VmHWM")
            async for _call in client.calls(MEMORY_FIRST_DAY, last):
                count += 1
        return count, before

    started = time.perf_counter()
    records, before = asyncio.run(stream())
    seconds = time.perf_counter() - started
    result = {"days": days, "records": records, "seconds": seconds, "before_kib": before}
    print(json.dumps({**result, "peak_kib": harness.memory_kib("VmHWM")}))


def measure_memory(plan: Plan) -> list[dict[str, Any]]:
    """Stream each range in a fresh interpreter; check its count; return what each reported."""
    data, results = harness.dataset(seed=SEED, calls_per_day=MEMORY_CALLS_PER_DAY), []
    with harness.simulator(
        seed=SEED, calls_per_day=MEMORY_CALLS_PER_DAY, per_page_max=PER_PAGE
    ) as sim:
        for days in plan.memory_days:
            harness.log(f"memory: {days} days in a fresh subprocess")
            command = [sys.executable, __file__, "--memory-child", sim.base_url, str(days)]
            output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            results.append(json.loads(output.splitlines()[-1]))
            last = MEMORY_FIRST_DAY + dt.timedelta(days=days - 1)
            truth = set().union(*harness.ids_by_day(data, MEMORY_FIRST_DAY, last).values())
            harness.check(f"memory, {days} days", truth, results[-1]["records"])
    return results


# --- the report -----------------------------------------------------------------------


def throughput_table(runs: dict[str, Run], contenders: list[Entry]) -> str:
    latency, bound = runs[SEQUENTIAL].latency, 1 / mean_added_latency()
    baseline, oracle_cpu = runs[SEQUENTIAL].pages_per_second, runs[ORACLE].cpu_per_page
    rows = []
    for entry in contenders:
        run, limit = runs[entry.label], entry.limit
        rate = run.pages_per_second
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


def gap_analysis(runs: dict[str, Run], entry: Entry) -> str:
    """Split the default client's shortfall by Little's law: slot use times latency."""
    run, limit, latency = runs[entry.label], entry.limit or 1, runs[SEQUENTIAL].latency
    slots, inflation = run.mean_in_flight / limit, latency / run.latency
    return (
        f"Little's law splits the default client's {run.pages_per_second * latency / limit:.0%} "
        f"of the ideal into **slot use** (mean requests in flight / limit = "
        f"{run.mean_in_flight:.1f} / {limit} = {slots:.0%}: ramp-up, the drain at the end and "
        f"any moment with fewer than {limit} requests ready) times **latency inflation** "
        f"(one request at a time / latency seen = {latency * 1e3:.1f} / "
        f"{run.latency * 1e3:.1f} ms = {inflation:.0%}: queueing in either event loop while "
        f"it parses other pages); {slots:.0%} x {inflation:.0%} = {slots * inflation:.0%} "
        "(the difference is the run's own start and end outside any request)."
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
    ideal = limit / runs[SEQUENTIAL].latency
    of_ideal, rate = run.pages_per_second / ideal, run.pages_per_second
    speedup = rate / runs[SEQUENTIAL].pages_per_second
    cpu_ratio = run.cpu_per_page / oracle_run.cpu_per_page
    small, large = memory[-2], memory[-1]
    memory_ratio = large["peak_kib"] / small["peak_kib"]
    return "\n".join(
        [
            f"- Throughput at the defaults: {of_ideal:.0%} of the ideal ({rate:,.0f} of "
            f"{ideal:,.0f} pages/s, {limit} / {runs[SEQUENTIAL].latency * 1e3:.1f} ms); target "
            f"≥ {TARGET_OF_IDEAL:.0%}: {harness.met(of_ideal >= TARGET_OF_IDEAL)}. The oracle "
            f"reaches {oracle_run.pages_per_second / ideal:.0%} of the ideal here; the client "
            f"{rate / oracle_run.pages_per_second:.0%} of the oracle. Against the added latency "
            f"alone ({limit} / {mean_added_latency() * 1e3:.1f} ms, no server time at all): "
            f"{rate * mean_added_latency() / limit:.0%}.",
            f"- Speed-up over the sequential baseline: {speedup:.1f}x; target about "
            f"{TARGET_SPEEDUP:g}x: {harness.met(speedup >= TARGET_SPEEDUP)}.",
            f"- Client CPU per page at the defaults: {run.cpu_per_page * 1e3:.2f} ms vs the "
            f"oracle's {oracle_run.cpu_per_page * 1e3:.2f} ms: **{cpu_ratio:.2f}x**; target ≤ "
            f"{TARGET_CPU_RATIO}x: {harness.met(cpu_ratio <= TARGET_CPU_RATIO)}.",
            f"- Peak memory, {large['records']:,} vs {small['records']:,} records: "
            f"{memory_ratio:.2f}x; target ≤ {TARGET_MEMORY_RATIO}x: "
            f"{harness.met(memory_ratio <= TARGET_MEMORY_RATIO)}.",
        ]
    )


def header(plan: Plan) -> str:
    last = FIRST_DAY + dt.timedelta(days=plan.days - 1)
    n0, windows = DEFAULTS.max_in_flight, DEFAULTS.max_windows
    packages = ("aiohttp", "orjson", "cattrs", "pendulum", "stamina")
    return "\n".join(
        [
            "# Client benchmark: paging throughput, CPU per page and streaming memory",
            "",
            *harness.environment(packages, sharing="the simulator and the client"),
            f"- Throughput: calls {FIRST_DAY}..{last} ({plan.days} days, {CALLS_PER_DAY:,} calls "
            f"a day, {PER_PAGE} a page) from the simulator in its own process (shape B), "
            f"{LATENCY_MS:g} ms median added latency (log-normal, mean "
            f"{mean_added_latency() * 1e3:.1f} ms; over ~1,200 requests the sample mean varies "
            "by about ±1.5%), rate limits off on both sides; every column the median of "
            f"{plan.rounds} interleaved round(s); every run returned exactly the ground-truth "
            "ids, once each",
            "- Memory: a fresh subprocess per range streams calls with `async for` at the "
            "client's defaults and discards them (their count checked); peak RSS is its "
            "`VmHWM`; the simulator adds no latency",
            f"- Targets at the defaults: ≥ {TARGET_OF_IDEAL:.0%} of the ideal pages/s (about "
            f"{TARGET_SPEEDUP:g}x the sequential baseline); client CPU per page ≤ "
            f"{TARGET_CPU_RATIO}x the oracle's; peak memory for the largest range ≤ "
            f"{TARGET_MEMORY_RATIO}x that for one tenth of it",
            "",
            "Contenders:",
            "",
            "- **voiceapi_async**: `async for call in client.calls(first, last)`, `rate_limit=0`, "
            f"otherwise its defaults ({n0} requests in flight, {windows} days at once, {PER_PAGE} "
            f"a page); then `max_in_flight` 32 and 64, with {windows} days at once and as many.",
            "- **sequential**: a plain aiohttp loop over the days and their pages, each body "
            "parsed with orjson and the same converter into `Call` records, as wrappers do.",
            "- **unbounded gather**: `asyncio.gather` over all days, each gathering all its pages "
            "after page 1, no connection limit (against the real API: 1,000 requests a minute).",
            "- **oracle**: every page of every day known up front (from the ground truth), all "
            "through one semaphore at the client's default limit, fetched and parsed like the "
            "sequential loop: a bound for any paging strategy, and the reference for CPU per page.",
            "- **ideal**: the in-flight limit over the latency of one request at a time, as the "
            "sequential loop measured it in the same run (Little's law).",
            "",
            "Columns: *peak / mean in flight* from aiohttp tracing (request start to response "
            "headers); *x ideal* is pages/s over the ideal, *x added-latency bound* over limit / "
            "mean added latency (no server time at all); *latency seen* is the mean request time; "
            "*client CPU* is this process's CPU per second of the run (100% = one core), *client "
            "CPU per page* its CPU milliseconds per page, *x oracle's* that over the oracle's.",
        ]
    )


def main() -> int:
    parser = harness.arguments(__doc__)
    parser.add_argument("--memory-child", nargs=2, metavar=("BASE_URL", "DAYS"), help="internal")
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child[0], int(args.memory_child[1]))
        return 0
    plan, contenders = QUICK if args.quick else FULL, entries()
    runs = measure_throughput(plan, contenders)
    memory = measure_memory(plan)
    sections = [
        header(plan),
        "## Throughput and CPU\n\n" + throughput_table(runs, contenders),
        "### Where the gap to the ideal goes\n\n" + gap_analysis(runs, contenders[0]),
        "## Memory\n\n" + memory_table(memory),
        "## Verdict\n\n" + verdicts(runs, contenders[0], memory),
    ]
    harness.publish("client", "\n\n".join(sections), quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
